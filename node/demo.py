"""``escrowd demo evm``: two whole trades through the HTTP API on a local chain.

Starts a node in dev mode in a temporary directory (SQLite, its own anvil),
serves the API on a free port, and plays three people with their own keys:
a seller, a buyer and an arbitrator. Trade 1 is funded by the seller's own
wallet, marked paid and released; trade 2 is disputed by the buyer and split
30/70 by the arbitrator (the node's agent key co-signs the ruling). Each step is
printed; the last line is one JSON object with the tally.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from node.config import load_settings
from node.errors import EscrowdError

SELLER_ACCOUNT = 1
BUYER_ACCOUNT = 2


class DemoError(EscrowdError):
    code = "demo_failed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)


def run_demo(chain: str, *, quiet: bool = False) -> int:
    if chain != "evm":
        raise DemoError(f"no demo for chain {chain!r}")
    with tempfile.TemporaryDirectory(prefix="escrowd-demo-") as tmp:
        return _run_evm(Path(tmp), Demo(quiet=quiet))


def _run_evm(tmp: Path, demo: Demo) -> int:
    import uvicorn
    from eth_account import Account
    from localchain.evm import dev_accounts
    from web3 import Web3

    from node.runtime import build_node

    os.environ.setdefault("ESCROWD_EVM__CONFIRMATIONS", "2")
    settings = load_settings(
        data_dir=tmp / "data", mode="dev", btc={"enabled": False}, sol={"enabled": False}
    )
    demo.say("starting a dev node: SQLite, local anvil, escrow contract deployed")
    node = build_node(settings)
    server: uvicorn.Server | None = None
    try:
        node.start_background()
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                node.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
            )
        )
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{base}/healthz").status_code == 200, "the API", 30)
        demo.say(f"API on {base}")
        assert node.evm is not None and node.evm_deployment is not None
        w3 = Web3(Web3.HTTPProvider(node.evm_deployment.rpc_url))
        accounts = dev_accounts(10)
        seller_key, buyer_key = accounts[SELLER_ACCOUNT].key, accounts[BUYER_ACCOUNT].key
        seller_addr = Account.from_key(seller_key).address
        buyer_addr = Account.from_key(buyer_key).address

        with httpx.Client(base_url=base, timeout=30) as http:
            tokens = _users(node)
            seller = {"Authorization": f"Bearer {tokens['seller']}"}
            buyer = {"Authorization": f"Bearer {tokens['buyer']}"}
            arbitrator = {"Authorization": f"Bearer {tokens['arbitrator']}"}
            currencies = _ok(http.get("/api/p2p-crypto/currencies"))
            eth = next(c for c in currencies if c["symbol"] == "ETH")
            demo.say(f"currencies: {[c['symbol'] for c in currencies]}")

            ad = _ok(http.post("/api/p2p-crypto/orders", headers=seller, json={
                "crypto_currency_id": eth["id"],
                "amount": str(3 * 10**18),
                "min_amount": str(10**17),
                "max_amount": str(2 * 10**18),
                "price_per_unit": "3150.00",
                "fiat_currency": "EUR",
                "payment_methods": ["SEPA"],
                "seller_address": seller_addr,
                "terms_and_conditions": "SEPA instant only",
            }))
            demo.say(f"seller posted ad #{ad['id']}: 3 ETH at 3150 EUR, 0.1 to 2 ETH per trade")

            results = {"released": 0, "resolved": 0}

            # -- trade 1: released -------------------------------------------
            t1 = _open_and_fund(http, w3, demo, ad["id"], buyer, seller_key, buyer_addr, 10**18)
            _act(http, demo, t1, "payment", buyer, buyer_key, "buyer marks paid")
            _wait_status(http, buyer, t1, "paid", demo)
            _act(http, demo, t1, "release-escrow", seller, seller_key, "seller releases")
            final = _wait_status(http, buyer, t1, "completed", demo)
            demo.say(f"trade #{t1} released: payout tx {final['escrow']['payout_tx']}")
            results["released"] += 1

            # -- trade 2: disputed, split 30/70 by the arbitrator -------------
            t2 = _open_and_fund(http, w3, demo, ad["id"], buyer, seller_key, buyer_addr,
                                5 * 10**17)
            _act(http, demo, t2, "payment", buyer, buyer_key, "buyer marks paid")
            _wait_status(http, buyer, t2, "paid", demo)
            body = {"dispute_type": "payment_not_received",
                    "description": "seller says the SEPA transfer never arrived"}
            opened = _ok(http.post(f"/api/p2p-crypto/orders/{t2}/dispute", headers=buyer,
                                   json=body))
            sig = _sign(buyer_key, opened["chain"]["payload"])
            _ok(http.post(f"/api/p2p-crypto/orders/{t2}/dispute", headers=buyer, json={
                **body, "signature": sig, "expiry": opened["chain"]["expiry"]}))
            demo.say(f"buyer opened dispute #{opened['dispute']['id']} and signed DISPUTE")
            _wait_status(http, buyer, t2, "disputed", demo)
            ruling = _ok(http.post(
                f"/api/p2p-crypto/disputes/{opened['dispute']['id']}/resolve",
                headers=arbitrator,
                json={"buyer_bps": 3000, "resolution_notes": "partial payment proven"},
            ))
            demo.say(f"arbitrator ruled 30% buyer / 70% seller: relay {ruling['submitted']}")
            final2 = _wait_status(http, buyer, t2, "resolved", demo)
            demo.say(f"trade #{t2} resolved: payout tx {final2['escrow']['payout_tx']}")
            results["resolved"] += 1

        summary = {"chain": "evm", "trades": 2, **results,
                   "seconds": round(time.monotonic() - demo.t0, 1)}
        print(json.dumps(summary), flush=True)
        return 0
    finally:
        if server is not None:
            server.should_exit = True
        node.stop()


def _users(node: Any) -> dict[str, str]:
    from node.db.session import transaction
    from node.trades import create_user

    out = {}
    with transaction(node.sessions) as session:
        for name, role in (("seller", "trader"), ("buyer", "trader"),
                           ("arbitrator", "arbitrator")):
            _user, token = create_user(session, username=f"demo-{name}", role=role)
            out[name] = token
    return out


def _open_and_fund(http: httpx.Client, w3: Any, demo: Demo, ad_id: int, buyer: dict[str, str],
                   seller_key: str, buyer_addr: str, amount: int) -> int:
    opened = _ok(http.post(f"/api/p2p-crypto/orders/{ad_id}/match", headers=buyer,
                           json={"amount": str(amount), "buyer_address": buyer_addr}))
    trade_id = int(opened["order"]["id"])
    demo.say(f"buyer took {amount / 10**18} ETH: trade #{trade_id}, escrow "
             f"{opened['funding']['escrow_id'][:18]}...")
    for step in opened["funding"]["transactions"]:
        tx = {
            "to": step["to"],
            "data": step["data"],
            "value": int(step["value"]),
            "chainId": int(step["chainId"]),
            "from": step["from"],
        }
        tx["nonce"] = w3.eth.get_transaction_count(step["from"])
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2)
        latest = w3.eth.get_block("latest")
        tx["maxFeePerGas"] = int(latest["baseFeePerGas"]) * 2 + 10**9
        tx["maxPriorityFeePerGas"] = 10**9
        signed = w3.eth.account.sign_transaction(tx, seller_key)
        txh = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(txh, timeout=60)
        if receipt["status"] != 1:
            raise DemoError(f"funding step {step['step']} reverted")
        demo.say(f"seller's own wallet sent {step['step']}: {txh.hex()[:18]}... "
                 f"(block {receipt['blockNumber']})")
    _wait_status(http, buyer, trade_id, "funded", demo)
    return trade_id


def _sign(key: str, typed: dict[str, Any]) -> str:
    from node.evm_trades import sign_typed_data

    return sign_typed_data(key, typed)


def _act(http: httpx.Client, demo: Demo, trade_id: int, endpoint: str, who: dict[str, str],
         key: str, what: str) -> None:
    url = f"/api/p2p-crypto/orders/{trade_id}/{endpoint}"
    req = _ok(http.post(url, headers=who, json={}))
    sig = _sign(key, req["payload"])
    sub = _ok(http.post(url, headers=who, json={"signature": sig, "expiry": req["expiry"]}))
    demo.say(f"{what}: signed EIP-712 {req['action']} in their wallet, relayed as job {sub['ref']}")


def _wait_status(http: httpx.Client, who: dict[str, str], trade_id: int, status: str,
                 demo: Demo, timeout: float = 90) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def check() -> bool:
        nonlocal seen
        seen = _ok(http.get(f"/api/p2p-crypto/orders/{trade_id}", headers=who))
        return bool(seen["status"] == status)

    _wait(check, f"trade {trade_id} to be {status} (last: {seen.get('status')})", timeout)
    demo.say(f"trade #{trade_id} is {status} (confirmed on chain, read through the API)")
    return seen


def _wait(pred: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise DemoError(f"timed out waiting for {what}: {last!r}")


def _ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise DemoError(f"{resp.request.method} {resp.request.url.path} -> "
                        f"{resp.status_code}: {resp.text}")
    return resp.json()
