"""``escrowd demo sol``: two whole Solana trades through the HTTP API on a
local chain (LiteSVM behind JSON-RPC, started by the node in dev mode).

The node runs in a temporary directory (SQLite, Solana only, watcher thread
reading at the finalized commitment) and serves the API on a free port. A
seller and a buyer, each with their own keypair, trade SOL (escrowed as
wrapped SOL in a 2-of-3 SPL Token multisig): trade 1 is funded by the seller's
own wallet from the transaction the API returned, marked paid (the buyer signs
a message) and released (the seller signs the payout, the node's agent
co-signs); trade 2 is disputed by the buyer and split 30/70 by the arbitrator
(the agent signs the ruling, the seller co-signs it). The last line is one
JSON object with the tally.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from node.config import load_settings
from node.demo import Demo, DemoError, _free_port, _ok, _users, _wait

LAMPORTS = 1_000_000_000


def run_demo_sol(*, quiet: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="escrowd-demo-sol-") as tmp:
        return _run(Path(tmp), Demo(quiet=quiet))


def _run(tmp: Path, demo: Demo) -> int:
    import uvicorn
    from solders.keypair import Keypair

    from node.runtime import build_node

    settings = load_settings(data_dir=tmp / "data", mode="dev", evm={"enabled": False},
                             sol={"enabled": True})
    demo.say("starting a dev node: SQLite, local Solana (LiteSVM behind JSON-RPC), "
             f"credits at {settings.sol.commitment}")
    node = build_node(settings)
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
        dev = node.dev_chains["sol"]
        seller, buyer = Keypair(), Keypair()
        for kp in (seller, buyer):
            dev.chain.airdrop(str(kp.pubkey()), 10 * LAMPORTS)
        demo.say(f"seller {seller.pubkey()} and buyer {buyer.pubkey()} hold their own keys")
        with httpx.Client(base_url=base, timeout=30) as http:
            tokens = _users(node)
            h = {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}
            currencies = _ok(http.get("/api/p2p-crypto/currencies"))
            sol = next(c for c in currencies if c["chain"] == "sol" and c["symbol"] == "SOL")
            demo.say(f"currencies: {[c['symbol'] for c in currencies]}")
            ad = _ok(http.post("/api/p2p-crypto/orders", headers=h["seller"], json={
                "crypto_currency_id": sol["id"], "amount": str(3 * LAMPORTS),
                "min_amount": str(LAMPORTS // 10), "max_amount": str(2 * LAMPORTS),
                "price_per_unit": "140.00", "fiat_currency": "EUR",
                "payment_methods": ["SEPA"], "seller_address": str(seller.pubkey()),
            }))
            demo.say(f"seller posted ad #{ad['id']}: 3 SOL at 140 EUR, 0.1 to 2 SOL per trade")
            results = {"released": 0, "resolved": 0}

            # -- trade 1: released ---------------------------------------------
            t1 = _open_and_fund(http, dev, demo, ad["id"], h, seller, buyer, LAMPORTS)
            _fact(http, demo, t1, "payment", h["buyer"], buyer, "buyer marks paid")
            _wait_status(http, h["buyer"], t1, "paid", demo)
            req = _ok(http.post(f"/api/p2p-crypto/orders/{t1}/release-escrow",
                                headers=h["seller"], json={}))
            sig = _sign_tx(req["payload"]["transaction"], seller)
            sub = _ok(http.post(f"/api/p2p-crypto/orders/{t1}/release-escrow",
                                headers=h["seller"],
                                json={"signature": sig, "expiry": req["expiry"]}))
            demo.say(f"seller signed the release in their wallet; the agent co-signed and the "
                     f"node sent {sub['ref'][:16]}...")
            final = _wait_status(http, h["buyer"], t1, "completed", demo)
            demo.say(f"trade #{t1} released: payout tx {final['escrow']['payout_tx'][:16]}...")
            results["released"] += 1

            # -- trade 2: disputed, split 30/70 by the arbitrator ----------------
            t2 = _open_and_fund(http, dev, demo, ad["id"], h, seller, buyer, LAMPORTS // 2)
            _fact(http, demo, t2, "payment", h["buyer"], buyer, "buyer marks paid")
            _wait_status(http, h["buyer"], t2, "paid", demo)
            body = {"dispute_type": "payment_not_received",
                    "description": "seller says the SEPA transfer never arrived"}
            opened = _fact(http, demo, t2, "dispute", h["buyer"], buyer,
                           "buyer opens a dispute", body)
            _wait_status(http, h["buyer"], t2, "disputed", demo)
            ruling = _ok(http.post(
                f"/api/p2p-crypto/disputes/{opened['dispute']['id']}/resolve",
                headers=h["arbitrator"],
                json={"buyer_bps": 3000, "resolution_notes": "partial payment proven"}))
            demo.say(f"arbitrator ruled 30% buyer / 70% seller; the agent signed payout "
                     f"#{ruling['submitted']['ref']}")
            pending = _ok(http.get(f"/api/sol/orders/{t2}/payout", headers=h["seller"]))
            from wallets.solana.signer import (
                SoftwareSigner,
                decode_transaction,
                encode_transaction,
                sign_partially,
            )

            signed = sign_partially(decode_transaction(pending["transaction"]),
                                    SoftwareSigner(seller))
            sub = _ok(http.post(f"/api/sol/orders/{t2}/payout", headers=h["seller"], json={
                "payout_id": pending["payout_id"], "transaction": encode_transaction(signed)}))
            demo.say(f"seller co-signed the ruled split in their wallet; sent {sub['ref'][:16]}...")
            final2 = _wait_status(http, h["buyer"], t2, "resolved", demo)
            demo.say(f"trade #{t2} resolved: payout tx {final2['escrow']['payout_tx'][:16]}...")
            results["resolved"] += 1

        # what the buyer's own wallet holds now (wrapped SOL): 1 + 30% of 0.5 SOL
        from spl.token.constants import WRAPPED_SOL_MINT
        from spl.token.instructions import get_associated_token_address

        ata = get_associated_token_address(buyer.pubkey(), WRAPPED_SOL_MINT)
        received = int(dev.chain.rpc("getTokenAccountBalance", str(ata),
                                     {"commitment": "finalized"})["value"]["amount"])
        if received != LAMPORTS + (LAMPORTS // 2) * 3000 // 10_000:
            raise DemoError(f"the buyer received {received} lamports of wrapped SOL")
        demo.say(f"the buyer's wallet holds {received / LAMPORTS} wrapped SOL")
        summary = {"chain": "sol", "trades": 2, **results, "buyer_received": str(received),
                   "commitment": settings.sol.commitment,
                   "seconds": round(time.monotonic() - demo.t0, 1)}
        print(json.dumps(summary), flush=True)
        return 0
    finally:
        if server is not None:
            server.should_exit = True
        node.stop()


def _sign_tx(tx_b64: str, key: Any) -> str:
    """What the party's wallet does: sign the transaction; the base58 signature."""
    from wallets.solana.signer import SoftwareSigner, decode_transaction, sign_partially

    tx = sign_partially(decode_transaction(tx_b64), SoftwareSigner(key))
    return str(tx.signatures[tx.message.account_keys.index(key.pubkey())])


def _fact(http: httpx.Client, demo: Demo, trade: int, endpoint: str, who: dict[str, str],
          key: Any, what: str, body: dict[str, Any] | None = None) -> Any:
    url = f"/api/p2p-crypto/orders/{trade}/{endpoint}"
    req = _ok(http.post(url, headers=who, json=body or {}))
    chain = req.get("chain", req)
    msg = chain["payload"]["message"]
    sig = str(key.sign_message(msg.encode()))
    out = _ok(http.post(url, headers=who,
                        json={**(body or {}), "signature": sig, "expiry": chain["expiry"]}))
    demo.say(f"{what}: signed {msg!r} in their wallet")
    return out


def _open_and_fund(http: httpx.Client, dev: Any, demo: Demo, ad_id: int,
                   h: dict[str, dict[str, str]], seller: Any, buyer: Any, amount: int) -> int:
    from wallets.solana.signer import SoftwareSigner, decode_transaction, sign_partially

    opened = _ok(http.post(f"/api/p2p-crypto/orders/{ad_id}/match", headers=h["buyer"],
                           json={"amount": str(amount), "buyer_address": str(buyer.pubkey())}))
    trade = int(opened["order"]["id"])
    f = opened["funding"]
    demo.say(f"buyer took {amount / LAMPORTS} SOL: trade #{trade}, escrow account "
             f"{f['escrow_token_account']} owned by 2-of-3 multisig {f['multisig']}")
    tx = sign_partially(decode_transaction(f["transaction"]), SoftwareSigner(seller))
    sig = dev.chain.rpc("sendTransaction", base64.b64encode(bytes(tx)).decode(),
                        {"encoding": "base64", "preflightCommitment": "confirmed"})
    demo.say(f"seller's own wallet signed and sent the funding: {str(sig)[:16]}...")
    _wait_status(http, h["buyer"], trade, "funded", demo)
    return trade


def _wait_status(http: httpx.Client, who: dict[str, str], trade: int, status: str,
                 demo: Demo, timeout: float = 90) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def check() -> bool:
        nonlocal seen
        seen = _ok(http.get(f"/api/p2p-crypto/orders/{trade}", headers=who))
        if seen["status"] in ("funding_mismatch",):
            raise DemoError(f"trade {trade} is {seen['status']}")
        return bool(seen["status"] == status)

    _wait(check, f"trade {trade} to be {status}", timeout)
    demo.say(f"trade #{trade} is {status} (read through the API)")
    return seen
