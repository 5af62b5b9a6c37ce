"""Custody on a real anvil chain through the HTTP API: per-user deposit
addresses, ETH deposits credited after the confirmations and reversed when a
reorg removes them, a sweep into the hot wallet and its excess to cold, a
withdrawal under the policy (TOTP, allow-list delay, daily limit, idempotent
request) signed by the hot wallet and settled when confirmed, and the
reconciliation of the ledger with the chain at every step."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import update

from node.accounts.totp import enable_totp, setup_totp
from node.custody.ledger import NODE_COLD, balance, check_balances
from node.db.models import utcnow
from node.db.models_custody import CustodyAllowedAddress
from node.db.session import transaction
from tests.api.custody_fixtures import *  # noqa: F403
from tests.api.custody_fixtures import EvmCustodyApi

ETH = 10**18
P = "/api/p2p-crypto"


def _deposit_address(api: EvmCustodyApi, who: str) -> str:
    r = api.post(f"{P}/deposit-addresses", who, json={"asset": "ETH"})
    assert r.status_code == 201, r.text
    return str(r.json()["address"])


def _send(api: EvmCustodyApi, to: str, value: int) -> str:
    w3 = api.chain.w3
    tx = w3.eth.send_transaction({"from": api.chain.accounts[0].address, "to": to, "value": value})
    return str(tx.hex())


def _reconciled(api: EvmCustodyApi) -> dict:  # type: ignore[type-arg]
    r = api.get(f"{P}/admin/reconciliation", "admin")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"], body
    return body


def test_deposit_addresses_credit_after_confirmations_and_reorg_reversal(
    evm_custody: EvmCustodyApi,
) -> None:
    api = evm_custody
    addr = _deposit_address(api, "seller")
    assert _deposit_address(api, "seller") == addr  # allocated once
    assert _deposit_address(api, "buyer") != addr
    listed = api.get(f"{P}/deposit-addresses", "seller").json()
    assert [a["address"] for a in listed] == [addr] and listed[0]["path"].startswith("m/44'/60'/0'")
    bad = api.post(f"{P}/deposit-addresses", "seller", json={"chain": "btc"})
    assert bad.status_code == 422 and bad.json()["code"] == "chain_not_enabled"
    assert api.post(f"{P}/deposit-addresses", "seller", json={}).status_code == 422
    assert api.post(f"{P}/deposit-addresses", json={"asset": "ETH"}).status_code == 401
    api.sync()

    snap = api.chain.anvil.snapshot()
    _send(api, addr, ETH)  # mined in its own block (anvil automines)
    tusd = api.chain.token("TUSD")
    tusd.functions.transfer(addr, 5 * ETH).transact({"from": api.chain.accounts[1].address})
    api.sync()
    # the ETH block has 2 confirmations (the token transfer mined another), TUSD's 1 of 2
    assert api.balances("seller") == {"ETH": {"available": ETH, "held": 0, "debt": 0}}
    api.sync(mine=1)
    assert api.balances("seller") == {
        "ETH": {"available": ETH, "held": 0, "debt": 0},
        "TUSD": {"available": 5 * ETH, "held": 0, "debt": 0},
    }
    assert api.balances("buyer") == {}
    body = _reconciled(api)
    assert {(x["asset"], x["ledger"]) for x in body["lines"]} >= {
        ("ETH", str(ETH)),
        ("TUSD", str(5 * ETH)),
    }

    # a reorg replaces the deposits' blocks with empty ones: the credits are reversed
    api.chain.anvil.revert(snap)
    api.sync(mine=4)
    zero = {"available": 0, "held": 0, "debt": 0}
    assert api.balances("seller") == {"ETH": zero, "TUSD": zero}
    body = _reconciled(api)
    assert {x["ledger"] for x in body["lines"]} == {"0"}


def _enable_totp(api: EvmCustodyApi, who: str) -> pyotp.TOTP:
    with transaction(api.node.sessions) as s:
        setup = setup_totp(s, user_id=api.users[who], account=who, issuer="escrowd")
        totp = pyotp.TOTP(setup.secret)
        enable_totp(s, user_id=api.users[who], code=totp.now(), count=1)
    return totp


def test_sweep_withdrawal_under_policy_and_reconciliation(
    evm_custody: EvmCustodyApi, caplog: pytest.LogCaptureFixture
) -> None:
    api = evm_custody
    w3 = api.chain.w3
    addr = _deposit_address(api, "seller")
    api.sync()
    _send(api, addr, ETH)
    api.sync(mine=2)
    assert api.balances("seller")["ETH"]["available"] == ETH
    assert api.get(f"{P}/admin/reconciliation", "seller").status_code == 403

    # deposit address -> hot wallet, and the hot wallet's excess over 0.5 ETH -> cold
    hot = api.svc.keys.evm_hot().address
    cold = api.chain.accounts[5].address
    cold_before = w3.eth.get_balance(cold)
    api.svc.sweep_job()
    api.sync(mine=2)
    api.svc.sweep_job()  # settles what is confirmed
    api.sync(mine=2)
    api.svc.sweep_job()
    assert w3.eth.get_balance(addr) < 10**15  # dust of the gas headroom
    sent_cold = w3.eth.get_balance(cold) - cold_before
    assert sent_cold > 0 and w3.eth.get_balance(hot) < 5 * 10**17
    with api.node.sessions() as s:
        assert -balance(s, NODE_COLD, "ETH") == sent_cold
    body = _reconciled(api)
    assert any(
        line["scope"] == "cold" and line["ledger"] == str(sent_cold) for line in body["lines"]
    )

    # the policy: allow-list with a delay, TOTP, daily limit; idempotent requests
    totp = _enable_totp(api, "seller")
    payee = api.chain.accounts[6].address
    r = api.post(
        f"{P}/withdrawal-addresses", "seller", json={"chain": "evm", "address": payee.lower()}
    )
    assert r.status_code == 201 and r.json()["address"] == payee
    entry_id = r.json()["id"]
    code = totp.at(time.time() + 30)  # the next time step (enabling used this one)
    req = {
        "asset": "ETH",
        "address": payee,
        "amount": str(3 * 10**17),
        "totp_code": code,
        "request_key": "w-1",
    }
    r = api.post(f"{P}/withdrawals", "seller", json=req)
    assert r.status_code == 403 and r.json()["code"] == "address_in_delay"
    with transaction(api.node.sessions) as s:  # an hour passes
        s.execute(
            update(CustodyAllowedAddress)
            .where(CustodyAllowedAddress.id == entry_id)
            .values(usable_from=utcnow() - timedelta(seconds=1))
        )
    r = api.post(f"{P}/withdrawals", "seller", json={**req, "amount": str(6 * 10**17)})
    assert r.status_code == 403 and r.json()["code"] == "user_daily_limit"
    r = api.post(
        f"{P}/withdrawals", "seller", json={**req, "address": api.chain.accounts[4].address}
    )
    assert r.status_code == 403 and r.json()["code"] == "address_not_allowed"
    r = api.post(f"{P}/withdrawals", "seller", json={**req, "totp_code": "000000"})
    assert 400 <= r.status_code < 500 and r.json()["code"].startswith("totp")
    other = api.post(f"{P}/deposit-addresses", "buyer", json={"asset": "ETH"}).json()["address"]
    for internal in (other, hot):
        r = api.post(f"{P}/withdrawals", "seller", json={**req, "address": internal})
        assert r.status_code == 422 and r.json()["code"] == "internal_address"
    r = api.post(f"{P}/withdrawals", "seller", json={**req, "amount": "-1"})
    assert r.status_code == 422

    r = api.post(f"{P}/withdrawals", "seller", json=req)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    assert r.json()["status"] == "held"
    again = api.post(f"{P}/withdrawals", "seller", json=req)
    assert again.status_code == 200 and again.json()["id"] == wid
    clash = api.post(f"{P}/withdrawals", "seller", json={**req, "amount": str(10**17)})
    assert clash.status_code == 409 and clash.json()["code"] == "request_key_reused"
    assert api.balances("seller")["ETH"] == {"available": 7 * 10**17, "held": 3 * 10**17, "debt": 0}

    payee_before = w3.eth.get_balance(payee)
    api.svc.withdrawals_job()  # signed by the hot wallet and broadcast (anvil mines it)
    assert api.get(f"{P}/withdrawals/{wid}", "seller").json()["status"] == "broadcast"
    api.sync(mine=2)
    api.svc.withdrawals_job()  # confirmed: the hold is settled
    w = api.get(f"{P}/withdrawals/{wid}", "seller").json()
    assert w["status"] == "confirmed" and int(w["network_fee"]) > 0 and w["txid"]
    r = api.post(f"{P}/withdrawals/{wid}/cancel", "seller")
    assert r.status_code == 409 and r.json()["code"] == "withdrawal_in_flight"
    assert api.post(f"{P}/withdrawals/{wid}/cancel", "buyer").status_code == 404
    assert w3.eth.get_balance(payee) - payee_before == 3 * 10**17
    assert api.balances("seller")["ETH"] == {"available": 7 * 10**17, "held": 0, "debt": 0}
    assert api.get(f"{P}/withdrawals/{wid}", "buyer").status_code == 404
    assert api.get(f"{P}/withdrawals/{wid}").status_code == 401
    assert [x["id"] for x in api.get(f"{P}/withdrawals", "seller").json()] == [wid]
    assert api.get(f"{P}/withdrawals", "buyer").json() == []
    _reconciled(api)
    with api.node.sessions() as s:
        assert check_balances(s) == []

    deposits = api.get(f"{P}/deposits", "seller").json()
    assert [(d["asset"], d["amount"], d["status"]) for d in deposits] == [
        ("ETH", str(ETH), "credited")
    ]
    assert api.get(f"{P}/deposits", "buyer").json() == []

    # coins the ledger does not know of: the reconciliation says so, the job alerts
    _send(api, hot, 12_345)
    api.sync(mine=2)
    body = api.get(f"{P}/admin/reconciliation", "admin").json()
    assert not body["ok"]
    assert [x["difference"] for x in body["lines"] if not x["ok"]] == ["12345"]
    with caplog.at_level(logging.CRITICAL, logger="escrowd.custody"):
        api.svc.reconcile_job()
    assert "ALERT custody reconciliation" in caplog.text

    assert api.delete(f"{P}/withdrawal-addresses/{entry_id}", "buyer").status_code == 404
    assert api.delete(f"{P}/withdrawal-addresses/{entry_id}", "seller").status_code == 204
    assert api.get(f"{P}/withdrawal-addresses", "seller").json() == []


def test_withdrawal_refused_by_the_chain_releases_the_hold(evm_custody: EvmCustodyApi) -> None:
    """A signed withdrawal whose transaction can never be mined (dropped, and
    its nonce used by another) is failed and its hold released."""
    api = evm_custody
    anvil = api.chain.anvil
    addr = _deposit_address(api, "seller")
    api.sync()
    _send(api, addr, ETH)
    api.sync(mine=2)
    api.svc.sweep_job()
    api.sync(mine=2)
    api.svc.sweep_job()
    totp = _enable_totp(api, "seller")
    payee = api.chain.accounts[6].address
    r = api.post(f"{P}/withdrawal-addresses", "seller", json={"chain": "evm", "address": payee})
    with transaction(api.node.sessions) as s:
        s.execute(
            update(CustodyAllowedAddress)
            .where(CustodyAllowedAddress.id == r.json()["id"])
            .values(usable_from=utcnow())
        )
    req = {
        "asset": "ETH",
        "address": payee,
        "amount": str(2 * 10**17),
        "totp_code": totp.at(time.time() + 30),
        "request_key": "w-fail",
    }
    r = api.post(f"{P}/withdrawals", "seller", json=req)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]

    anvil.rpc("evm_setAutomine", False)
    try:
        api.svc.withdrawals_job()
        w = api.get(f"{P}/withdrawals/{wid}", "seller").json()
        assert w["status"] == "broadcast"
        hot = api.svc.keys.evm_hot().address
        anvil.rpc("anvil_dropTransaction", w["txid"])
        nonce = int(anvil.rpc("eth_getTransactionCount", hot, "latest"), 16)
        anvil.rpc("anvil_setNonce", hot, hex(nonce + 1))
    finally:
        anvil.rpc("evm_setAutomine", True)
    api.svc.withdrawals_job()
    w = api.get(f"{P}/withdrawals/{wid}", "seller").json()
    assert w["status"] == "failed" and "refused" in w["error"]
    assert api.balances("seller")["ETH"] == {"available": ETH, "held": 0, "debt": 0}
    _reconciled(api)


def test_token_sweep_with_gas_top_up_and_token_withdrawal(evm_custody: EvmCustodyApi) -> None:
    """ERC-20 deposits reach the hot wallet although the deposit address has no
    gas (the hot wallet tops it up first), and are withdrawn from there."""
    api = evm_custody
    w3 = api.chain.w3
    tusd = api.chain.token("TUSD")
    seller_addr = _deposit_address(api, "seller")
    r = api.post(f"{P}/deposit-addresses", "buyer", json={"asset": "TUSD"})
    buyer_addr = r.json()["address"]
    api.sync()
    _send(api, seller_addr, ETH)  # the hot wallet's gas comes from this deposit
    api.sync(mine=2)
    api.svc.run_sweeps()
    api.sync(mine=2)
    api.svc.run_sweeps()
    hot = api.svc.keys.evm_hot().address
    assert w3.eth.get_balance(hot) > 0

    tusd.functions.transfer(buyer_addr, 7 * ETH).transact({"from": api.chain.accounts[1].address})
    api.sync(mine=2)
    assert api.balances("buyer")["TUSD"]["available"] == 7 * ETH
    assert w3.eth.get_balance(buyer_addr) == 0
    assert [x.split(":")[0] for x in api.svc.run_sweeps()] == ["gas"]
    api.sync(mine=2)
    cold = api.chain.accounts[5].address
    cold_before = tusd.functions.balanceOf(cold).call()
    # settles the top-up, sends the tokens to hot, and (anvil mined that at
    # once) the 3 TUSD above the hot wallet's ceiling to cold
    done = api.svc.run_sweeps()
    assert sorted(x.split(":")[0] for x in done) == ["gas", "to_cold", "to_hot"]
    api.sync(mine=2)
    done = api.svc.run_sweeps()  # settles both
    assert sorted(x.split(":", 1)[0] + ":" + x.rsplit(":", 1)[1] for x in done) == [
        "to_cold:confirmed",
        "to_hot:confirmed",
    ]
    assert tusd.functions.balanceOf(hot).call() == 4 * ETH
    assert tusd.functions.balanceOf(cold).call() - cold_before == 3 * ETH
    assert tusd.functions.balanceOf(buyer_addr).call() == 0
    with api.node.sessions() as s:
        assert -balance(s, NODE_COLD, "TUSD") == 3 * ETH
    # the top-up was a move between the node's holdings, not a deposit of the buyer's
    assert api.balances("buyer").get("ETH") is None
    _reconciled(api)

    totp = _enable_totp(api, "buyer")
    payee = api.chain.accounts[6].address
    r = api.post(f"{P}/withdrawal-addresses", "buyer", json={"chain": "evm", "address": payee})
    with transaction(api.node.sessions) as s:
        s.execute(
            update(CustodyAllowedAddress)
            .where(CustodyAllowedAddress.id == r.json()["id"])
            .values(usable_from=utcnow())
        )
    r = api.post(
        f"{P}/withdrawals",
        "buyer",
        json={
            "asset": "TUSD",
            "address": payee,
            "amount": str(2 * ETH),
            "totp_code": totp.at(time.time() + 30),
            "request_key": "t-1",
        },
    )
    assert r.status_code == 201, r.text
    before = tusd.functions.balanceOf(payee).call()
    assert api.svc.run_withdrawals() == {r.json()["id"]: "broadcast"}
    api.sync(mine=2)
    assert api.svc.run_withdrawals() == {r.json()["id"]: "confirmed"}
    assert tusd.functions.balanceOf(payee).call() - before == 2 * ETH
    assert api.balances("buyer")["TUSD"] == {"available": 5 * ETH, "held": 0, "debt": 0}
    _reconciled(api)
    with api.node.sessions() as s:
        assert check_balances(s) == []
