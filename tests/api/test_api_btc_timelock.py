"""The seller's way out without the node (invariant I3 on Bitcoin): after
``csv_blocks`` the seller's refund key alone spends the escrow. Through the
API the seller gets the timelock PSBT, signs it in their own wallet and the
node only broadcasts it (refused before maturity). The watchtower: a signed
timelock refund left with the node is broadcast once it matures, if the trade
is still unpaid and undisputed (and not otherwise)."""

from __future__ import annotations

from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import CSV_BLOCKS, BtcApi


def _status(api: BtcApi, tid: int) -> str:
    return str(api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()["status"])


def test_timelock_refund_by_the_seller_alone(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(100_000)
    tid = int(m["order"]["id"])
    btc_api.fund(m)
    r = btc_api.get(f"/api/btc/orders/{tid}/timelock-refund", "seller")
    assert r.status_code == 200, r.text
    payload = r.json()
    assert payload["matured"] is False and payload["kind"] == "timelock_refund"
    assert btc_api.get(f"/api/btc/orders/{tid}/timelock-refund", "buyer").status_code == 403
    signed = btc_api.bn.seller.sign(payload["psbt"])  # the refund key (branch 1) signs
    r = btc_api.post(f"/api/btc/orders/{tid}/timelock-refund", "seller", json={"psbt": signed})
    assert r.status_code == 409 and r.json()["code"] == "too_early"
    # one block short of the timelock: still refused
    btc_api.bn.sync(mine=CSV_BLOCKS - 2)
    r = btc_api.post(f"/api/btc/orders/{tid}/timelock-refund", "seller", json={"psbt": signed})
    assert r.status_code == 409
    btc_api.bn.sync(mine=1)
    r = btc_api.post(f"/api/btc/orders/{tid}/timelock-refund", "seller", json={"psbt": signed})
    assert r.status_code == 202, r.text
    btc_api.bn.sync(mine=1)
    assert _status(btc_api, tid) == "refunded"
    esc = btc_api.get(f"/api/btc/orders/{tid}/escrow", "seller").json()
    assert esc["payout"]["kind"] == "timelock_refund" and esc["unspent_sat"] == 0


def test_watchtower_broadcasts_at_maturity(btc_api: BtcApi) -> None:
    unpaid = btc_api.open_trade(100_000)
    paid = btc_api.open_trade(100_000)
    a, b = int(unpaid["order"]["id"]), int(paid["order"]["id"])
    btc_api.fund(unpaid)
    btc_api.fund(paid)
    for tid in (a, b):
        psbt = btc_api.get(f"/api/btc/orders/{tid}/timelock-refund", "seller").json()["psbt"]
        r = btc_api.post(f"/api/btc/orders/{tid}/watchtower", "seller",
                         json={"psbt": btc_api.bn.seller.sign(psbt)})
        assert r.status_code == 202, r.text
    # an unsigned one is refused
    psbt = btc_api.get(f"/api/btc/orders/{a}/timelock-refund", "seller").json()["psbt"]
    r = btc_api.post(f"/api/btc/orders/{a}/watchtower", "seller", json={"psbt": psbt})
    assert r.status_code == 422 and r.json()["code"] == "psbt_missing_party_signature"
    btc_api.post(f"/api/p2p-crypto/orders/{b}/payment", "buyer", json={})
    tower = btc_api.bn.node.watchers[1]
    assert tower.sync() == []  # not matured yet
    btc_api.bn.sync(mine=CSV_BLOCKS)
    sent = tower.sync()
    assert len(sent) == 1  # the unpaid trade only
    assert tower.sync() == []  # once
    btc_api.bn.sync(mine=1)
    assert _status(btc_api, a) == "refunded"
    assert _status(btc_api, b) == "paid"
