"""Fee bumps on a real regtest node (libbitcoinkernel) whose miner leaves
packages under 3 sat/vB out of blocks, through the API and the node's job:

- a release signed at the floor fee (1 sat/vB) stays in the mempool; the
  seller signed the payout's fee ladder in advance; each time the payout sits
  ``bump_after_blocks`` blocks unconfirmed the node's job (registered in
  ``node.jobs``) broadcasts the next rung (2 sat/vB: still stuck; 4 sat/vB:
  confirms); the trade ends completed once, the buyer gets the amount minus the
  rung's fee; rungs that break the policy (fee over the rung cap, the wrong
  party's rungs) are refused with problem+json;
- a seller's funding at 1 sat/vB stuck past the payment window is bumped by a
  CPFP child the node builds and the seller signs with BDK (a key escrowd
  never sees): the node refuses children that pay elsewhere or too little,
  broadcasts the right one, the package confirms and the trade is funded;
- a payout lost from the mempool (regtest restarted without mempool.dat) is
  broadcast again by the same job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import bdkpython as bdk
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.script import Script

from node.db.models import P2POrder
from node.db.session import transaction
from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import BtcApi
from wallets.bitcoin import REGTEST, EscrowScript, FundingOutput, Ruling, build_payout_psbt

PROBLEM = "application/problem+json"


def trade_id(match: dict[str, Any]) -> int:
    return int(match["order"]["id"])


def received(api: BtcApi, address: str) -> int:
    res = api.bn.regtest.rpc("scantxoutset", "start", [f"addr({address})"])
    return int(round(float(res["total_amount"]) * 100_000_000))


def mempool(api: BtcApi) -> list[str]:
    return list(api.bn.regtest.rpc("getrawmempool"))


def bump_job(api: BtcApi) -> Any:
    (job,) = [fn for job_id, fn, _every in api.bn.node.jobs if job_id.endswith(":fee-bump")]
    return job


def test_stuck_payout_is_bumped_by_the_job(stingy_btc_api: BtcApi) -> None:
    api = stingy_btc_api
    amount = 150_000
    m = api.open_trade(amount)
    tid = trade_id(m)
    api.bn.seller.wallet.send(m["funding"]["address"], amount, feerate=4)
    api.bn.sync(mine=1)
    assert api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "funded"
    # fee estimates look at the last 12 blocks: empty ones bring them to the 1 sat/vB floor
    api.bn.sync(mine=12)
    # the buyer signs refund rungs (a cancel they may ask for later): kept, but never
    # used to bump the seller's release (I5: the agent signs one decision)
    r = api.post(f"/api/p2p-crypto/orders/{tid}/cancel-escrow", "buyer", json={})
    assert r.status_code == 200, r.text
    refund_rungs = r.json()["payload"]["fee_ladder"]
    r = api.post(f"/api/btc/orders/{tid}/fee-ladder", "buyer",
                 json={"psbts": [api.bn.buyer.sign(x["psbt"]) for x in refund_rungs]})
    assert r.status_code == 202 and r.json()["kind"] == "refund", r.text
    assert api.post(f"/api/p2p-crypto/orders/{tid}/payment", "buyer", json={}).status_code == 200
    r = api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller", json={})
    assert r.status_code == 200, r.text
    payload = r.json()["payload"]
    ladder = payload["fee_ladder"]
    assert [x["rung"] for x in ladder] == [1, 2, 3]
    fees = [payload["fee_sat"]] + [x["fee_sat"] for x in ladder]
    assert fees == sorted(fees) and len(set(fees)) == 4
    assert payload["fee_sat"] <= payload["vsize_max"]  # the floor: 1 sat/vB
    seller = api.bn.seller

    # refused rungs: the buyer's signature on release rungs, a rung above its cap
    r = api.post(f"/api/btc/orders/{tid}/fee-ladder", "buyer",
                 json={"psbts": [api.bn.buyer.sign(ladder[0]["psbt"])]})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    esc = api.get(f"/api/btc/orders/{tid}/escrow", "seller").json()
    script = EscrowScript.from_descriptor(esc["descriptor"], network=REGTEST)
    funding = [FundingOutput(d["txid"], d["vout"], d["amount_sat"], script.script_pubkey)
               for d in esc["deposits"]]
    greedy = build_payout_psbt(script, funding,
                               Ruling.release(api.bn.buyer.wallet.address, network=REGTEST),
                               fee_sat=payload["fee_sat"] * 40)
    r = api.post(f"/api/btc/orders/{tid}/fee-ladder", "seller",
                 json={"psbts": [seller.sign(greedy.psbt)]})
    assert r.status_code == 422 and r.json()["code"] == "psbt_fee_above_cap", r.text
    r = api.post(f"/api/btc/orders/{tid}/fee-ladder", "outsider",
                 json={"psbts": [seller.sign(ladder[0]["psbt"])]})
    assert r.status_code == 404

    # the seller signs the payout and its ladder
    r = api.post(f"/api/btc/orders/{tid}/fee-ladder", "seller",
                 json={"psbts": [seller.sign(x["psbt"]) for x in ladder]})
    assert r.status_code == 202, r.text
    assert [x["fee_sat"] for x in r.json()["rungs"]] == fees[1:]
    before = received(api, api.bn.buyer.wallet.address)
    r = api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                 json={"psbt": seller.sign(payload["psbt"])})
    assert r.status_code == 202, r.text
    first = r.json()["ref"]

    job = bump_job(api)
    api.bn.sync(mine=1)
    assert first in mempool(api)  # 1 sat/vB: left out of the block
    job()
    assert first in mempool(api)  # stuck for 1 block only: not yet
    api.bn.sync(mine=1)
    assert first in mempool(api)
    job()  # stuck for 2 blocks: the next rung replaces it
    pool = mempool(api)
    assert first not in pool and pool == [ladder[0]["txid"]]
    second = pool[0]
    job()  # just broadcast: nothing to do
    assert mempool(api) == [second]
    api.bn.sync(mine=2)  # 2 sat/vB is still too little for this miner
    assert api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "paid"
    job()
    third = ladder[1]["txid"]
    assert mempool(api) == [third]
    api.bn.sync(mine=1)
    assert mempool(api) == []
    order = api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()
    assert order["status"] == "completed" and order["escrow"]["payout_tx"] == third
    assert received(api, api.bn.buyer.wallet.address) - before == amount - fees[2]
    esc = api.get(f"/api/btc/orders/{tid}/escrow", "seller").json()
    assert esc["payout"]["confirmed_txid"] == third
    assert [(b["from"], b["to"]) for b in esc["fee_ladder"]["bumps"]] == [
        (first, second), (second, third)]
    assert {x["kind"] for x in esc["fee_ladder"]["rungs"]} == {"release", "refund"}
    # released once: the escrow's only deposit is spent by the rung, nothing is left
    assert [d["spent_by"] for d in esc["deposits"]] == [third] and esc["unspent_sat"] == 0
    job()
    assert mempool(api) == []


def _bdk_sign(wallet_key: Any, psbt_b64: str) -> str:
    """The seller's wallet (BDK, from the key's WIF) signs and finalizes the child."""
    wif = wallet_key.wif(NETWORKS["regtest"])
    wallet = bdk.Wallet.create_single(bdk.Descriptor(f"wpkh({wif})", bdk.NetworkKind.TEST),
                                      bdk.Network.REGTEST, bdk.Persister.new_in_memory())
    psbt = bdk.Psbt(psbt_b64)
    opts = bdk.SignOptions(trust_witness_utxo=True, assume_height=None,
                           allow_all_sighashes=False, try_finalize=True,
                           sign_with_tap_internal_key=False, allow_grinding=True)
    wallet.sign(psbt, opts)
    return str(psbt.serialize())


def test_seller_bumps_stuck_funding_with_cpfp(stingy_btc_api: BtcApi) -> None:
    api = stingy_btc_api
    amount = 120_000
    m = api.open_trade(amount)
    tid = trade_id(m)
    wallet = api.bn.seller.wallet
    funding_txid = wallet.send(m["funding"]["address"], amount, feerate=1)
    api.bn.sync(mine=2)
    assert funding_txid in mempool(api)
    assert api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()["status"] == \
        "awaiting_funding"
    path = f"/api/p2p-crypto/btc/orders/{tid}/funding/bump"
    body = {"funding_txid": funding_txid, "feerate_sat_vb": 5}
    r = api.post(path, "seller", json=body)
    assert r.status_code == 409 and r.json()["code"] == "payment_window_open", r.text
    with transaction(api.bn.node.sessions) as s:  # the payment window has passed
        order = s.get(P2POrder, tid)
        assert order is not None and order.matched_at is not None
        order.matched_at -= timedelta(hours=2)
    assert api.post(path, "buyer", json=body).status_code == 403
    r = api.post(path, "seller", json={**body, "funding_txid": "ab" * 32})
    assert r.status_code == 409 and r.json()["code"] == "funding_not_in_mempool"
    r = api.post(path, "seller", json=body)
    assert r.status_code == 200, r.text
    child = r.json()
    assert child["pays_to"] == wallet.address and child["target_feerate_sat_vb"] == 5
    assert child["package_feerate_sat_vb"] >= 5

    def mutated(fn: Any) -> str:
        p = PSBT.from_string(child["psbt"])
        fn(p)
        return _bdk_sign(wallet.key, str(p.to_string()))

    def elsewhere(p: PSBT) -> None:
        p.outputs[0].script_pubkey = Script(bytes.fromhex("0014" + "22" * 20))

    def cheaper(p: PSBT) -> None:
        p.outputs[0].value = child["change_amount_sat"] - 200

    for fn, code in ((elsewhere, "cpfp_unexpected_output"), (cheaper, "cpfp_feerate_too_low")):
        r = api.post(path, "seller", json={**body, "psbt": mutated(fn)})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
        assert r.json()["code"] == code, (fn.__name__, r.json())
    r = api.post(path, "seller", json={**body, "psbt": child["psbt"]})  # unsigned
    assert r.status_code == 422 and r.json()["code"] == "cpfp_missing_signature", r.text

    r = api.post(path, "seller", json={**body, "psbt": _bdk_sign(wallet.key, child["psbt"])})
    assert r.status_code == 202, r.text
    child_txid = r.json()["ref"]
    assert set(mempool(api)) == {funding_txid, child_txid}
    api.bn.sync(mine=1)
    assert mempool(api) == []  # the package paid enough: both mined
    order = api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()
    assert order["status"] == "funded" and order["escrow"]["funded_tx"] == funding_txid


def test_dropped_payout_is_broadcast_again(stingy_btc_api: BtcApi) -> None:
    """The regtest node restarts without its mempool (as a bitcoind whose
    mempool.dat is lost): the job broadcasts the unconfirmed payout again."""
    from localchain.bitcoin import BitcoinRegtest

    from tests.functional.btc_node_fixtures import STINGY_BLOCK_MIN_FEE

    api = stingy_btc_api
    m = api.open_trade(110_000)
    tid = trade_id(m)
    api.bn.seller.wallet.send(m["funding"]["address"], 110_000, feerate=4)
    api.bn.sync(mine=13)
    payload = api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                       json={}).json()["payload"]
    r = api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                 json={"psbt": api.bn.seller.sign(payload["psbt"])})
    assert r.status_code == 202, r.text
    txid = r.json()["ref"]
    old = api.bn.regtest
    old.stop()
    (old.data_dir / "mempool.dat").unlink()
    new = BitcoinRegtest(port=old.port, data_dir=old.data_dir,
                         extra_args=("--blockmintxfee", STINGY_BLOCK_MIN_FEE)).start()
    try:
        api.bn.regtest = new
        assert mempool(api) == []
        job = bump_job(api)
        job()  # not yet overdue
        assert mempool(api) == []
        api.bn.sync(mine=2)
        job()
        assert mempool(api) == [txid]
        esc = api.get(f"/api/btc/orders/{tid}/escrow", "seller").json()
        assert esc["fee_ladder"]["rebroadcasts"] == 1
    finally:
        new.stop()
        api.bn.regtest = old
