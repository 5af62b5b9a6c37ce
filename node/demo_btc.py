"""``escrowd demo btc``: three Bitcoin trades through the HTTP API on a local
regtest chain (libbitcoinkernel behind bitcoind's JSON-RPC).

Starts a dev node in a temporary directory (SQLite, its own regtest node),
serves the API on a free port and plays the people: a seller and a buyer
whose keys are independent software signers from their own seeds (only
public keys go to the node), coins from a dev wallet, and an arbitrator.

1. released: funded from the seller's wallet, marked paid, the seller signs
   the release PSBT, the node co-signs and broadcasts;
2. disputed: the buyer disputes, the arbitrator rules everything to the
   buyer (the node's agent key signs the ruling's PSBT), the buyer co-signs;
3. timelock refund: the seller alone signs the timelock branch and, after
   ``csv_blocks`` blocks (mined here), the node only broadcasts it.

The last line is one JSON object with the tally.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from node.config import load_settings
from node.demo import Demo, DemoError, _free_port, _ok, _users, _wait, _wait_status

CSV_BLOCKS = 10


def run_demo_btc(*, quiet: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="escrowd-demo-btc-") as tmp:
        return _run(Path(tmp), Demo(quiet=quiet))


def _signer(name: str) -> Any:
    from wallets.bitcoin import REGTEST, SoftwareSigner

    return SoftwareSigner.from_seed(hashlib.sha256(name.encode()).digest(), network=REGTEST)


def _run(tmp: Path, demo: Demo) -> int:
    import uvicorn
    from localchain.bitcoin.devwallet import DevWallet

    from node.btc_trades import BtcTradeChain
    from node.runtime import build_node

    t0 = time.monotonic()
    settings = load_settings(
        data_dir=tmp / "data", mode="dev", evm={"enabled": False},
        btc={"enabled": True, "csv_blocks": CSV_BLOCKS, "poll_interval_ms": 200,
             "watchtower_interval_s": 1, "dev_block_interval_s": 0},
    )
    demo.say("starting a dev node: SQLite, local Bitcoin regtest node on libbitcoinkernel")
    node = build_node(settings)
    chain = node.chains.get("btc")
    assert isinstance(chain, BtcTradeChain)
    server: uvicorn.Server | None = None
    try:
        node.start_background()
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(node.app(), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{base}/healthz").status_code == 200, "the API", 30)
        demo.say(f"API on {base}")

        rpc = chain.adapter.rpc
        coins = DevWallet(rpc, "demo seller coins")
        seller_payout = DevWallet(rpc, "demo seller payout")
        buyer_payout = DevWallet(rpc, "demo buyer payout")
        rpc.rpc("generatetoaddress", 101, coins.address)
        seller_keys, buyer_keys = _signer("demo seller seed"), _signer("demo buyer seed")
        demo.say(f"seller's wallet has {coins.balance() / 1e8:.8f} BTC (mined on regtest)")

        def mine(n: int) -> None:
            rpc.rpc("generatetoaddress", n, coins.address)

        with httpx.Client(base_url=base, timeout=60) as http:
            tokens = _users(node)
            seller = {"Authorization": f"Bearer {tokens['seller']}"}
            buyer = {"Authorization": f"Bearer {tokens['buyer']}"}
            arbitrator = {"Authorization": f"Bearer {tokens['arbitrator']}"}
            currencies = _ok(http.get("/api/p2p-crypto/currencies"))
            btc_id = next(c["id"] for c in currencies if c["symbol"] == "BTC")

            def open_trade(i: int, amount: int) -> int:
                ad = _ok(http.post("/api/p2p-crypto/orders", headers=seller, json={
                    "crypto_currency_id": btc_id, "amount": str(amount),
                    "price_per_unit": "90000", "fiat_currency": "EUR",
                    "payment_methods": ["SEPA"], "seller_address": seller_payout.address,
                    "seller_pubkey": seller_keys.key_expression("m/84h/1h/0h", (0, i)),
                    "seller_refund_pubkey": seller_keys.key_expression("m/84h/1h/0h", (1, i)),
                }))
                m = _ok(http.post(f"/api/p2p-crypto/orders/{ad['id']}/match", headers=buyer,
                                  json={"amount": str(amount),
                                        "buyer_address": buyer_payout.address,
                                        "buyer_pubkey": buyer_keys.key_expression(
                                            "m/84h/1h/0h", (0, i))}))
                tid = int(m["order"]["id"])
                f = m["funding"]
                demo.say(f"trade #{tid}: escrow {f['address']} = {f['descriptor'][:40]}...")
                txid = coins.send(f["address"], amount)
                demo.say(f"seller's own wallet paid {amount} sat: {txid[:16]}...")
                mine(1)
                _wait_status(http, buyer, tid, "funded", demo)
                return tid

            def sign_and_post(url: str, who: dict[str, str], signer: Any, psbt: str) -> str:
                sub = _ok(http.post(url, headers=who, json={"psbt": signer.sign_psbt(psbt)}))
                return str(sub["ref"])

            results = {"released": 0, "resolved": 0, "refunded": 0}
            txids: dict[str, str] = {}

            # -- 1: released ---------------------------------------------------
            t1 = open_trade(1, 150_000)
            _ok(http.post(f"/api/p2p-crypto/orders/{t1}/payment", headers=buyer, json={}))
            demo.say("buyer marked the payment sent (off chain on Bitcoin: nothing to sign)")
            url = f"/api/p2p-crypto/orders/{t1}/release-escrow"
            req = _ok(http.post(url, headers=seller, json={}))
            txids["released"] = sign_and_post(url, seller, seller_keys, req["payload"]["psbt"])
            demo.say(f"seller signed the release PSBT; the agent co-signed: {txids['released']}")
            mine(1)
            _wait_status(http, buyer, t1, "completed", demo)
            results["released"] += 1

            # -- 2: disputed, all to the buyer --------------------------------------
            t2 = open_trade(2, 200_000)
            _ok(http.post(f"/api/p2p-crypto/orders/{t2}/payment", headers=buyer, json={}))
            d = _ok(http.post(f"/api/p2p-crypto/orders/{t2}/dispute", headers=buyer, json={
                "dispute_type": "not_released", "description": "paid by SEPA, not released"}))
            _wait_status(http, buyer, t2, "disputed", demo)
            ruling = _ok(http.post(f"/api/p2p-crypto/disputes/{d['dispute']['id']}/resolve",
                                   headers=arbitrator, json={"buyer_bps": 10_000,
                                                             "resolution_notes": "paid"}))
            demo.say(f"arbitrator ruled for the buyer; agent signed: {ruling['submitted']}")
            pending = _ok(http.get(f"/api/btc/orders/{t2}/payout", headers=buyer))
            txids["resolved"] = sign_and_post(f"/api/btc/orders/{t2}/payout", buyer,
                                              buyer_keys, pending["psbt"])
            demo.say(f"buyer co-signed the ruling's PSBT: {txids['resolved']}")
            mine(1)
            _wait_status(http, buyer, t2, "resolved", demo)
            results["resolved"] += 1

            # -- 3: timelock refund by the seller alone --------------------------------
            t3 = open_trade(3, 120_000)
            url = f"/api/btc/orders/{t3}/timelock-refund"
            req = _ok(http.get(url, headers=seller))
            early = http.post(url, headers=seller,
                              json={"psbt": seller_keys.sign_psbt(req["psbt"])})
            demo.say(f"before the timelock the refund is refused: {early.status_code} "
                     f"{early.json().get('code')}")
            if early.status_code != 409:
                raise DemoError("a timelock refund was accepted before the timelock")
            mine(CSV_BLOCKS)
            demo.say(f"{CSV_BLOCKS} blocks later (mined)")
            txids["refunded"] = sign_and_post(url, seller, seller_keys, req["psbt"])
            demo.say(f"seller alone signed the timelock refund: {txids['refunded']}")
            mine(1)
            _wait_status(http, seller, t3, "refunded", demo)
            results["refunded"] += 1

        print(json.dumps({"chain": "btc", "trades": 3, **results, "txids": txids,
                          "seconds": round(time.monotonic() - t0, 1)}), flush=True)
        return 0
    finally:
        if server is not None:
            server.should_exit = True
        node.stop()
        if chain.dev_node is not None:
            chain.dev_node.stop()
