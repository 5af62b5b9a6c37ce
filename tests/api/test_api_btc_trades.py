"""Bitcoin trades through the marketplace API on a real node (local regtest
chain on libbitcoinkernel + PostgreSQL): the traders bring their own keys,
matching returns the escrow address and descriptor, release / cancel return
the PSBT to sign and take the signed PSBT back, the node co-signs under its
policy and broadcasts; disputes are ruled by the agent and co-signed by the
winner; the seller alone refunds after the timelock; mutated PSBTs are
refused with problem+json; a PSBT signed by BDK's own signer is accepted."""

from __future__ import annotations

import base64
from typing import Any

import bdkpython as bdk
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import SIGHASH, TransactionOutput

from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import BtcApi
from wallets.bitcoin import REGTEST, EscrowScript

PROBLEM = "application/problem+json"


def trade_id(match: dict[str, Any]) -> int:
    return int(match["order"]["id"])


def received(api: BtcApi, address: str) -> int:
    res = api.bn.regtest.rpc("scantxoutset", "start", [f"addr({address})"])
    return int(round(float(res["total_amount"]) * 100_000_000))


def release_psbt(api: BtcApi, tid: int) -> dict[str, Any]:
    r = api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller", json={})
    assert r.status_code == 200, r.text
    return dict(r.json()["payload"])


def test_match_returns_address_and_descriptor(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(120_000)
    f = m["funding"]
    assert f["chain"] == "btc" and "#" in f["descriptor"]
    # anyone rebuilds the address from the descriptor
    assert EscrowScript.from_descriptor(f["descriptor"], network=REGTEST).address == f["address"]
    assert m["order"]["status"] == "awaiting_funding"
    assert m["order"]["escrow"]["escrow_id"] == f["address"]


def test_keys_are_required_and_checked(btc_api: BtcApi) -> None:
    body = {"crypto_currency_id": btc_api.btc_id(), "amount": "100000",
            "price_per_unit": "90000", "fiat_currency": "EUR", "payment_methods": ["SEPA"],
            "seller_address": btc_api.bn.seller.wallet.address}
    r = btc_api.post("/api/p2p-crypto/orders", "seller", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["field"] == "seller_pubkey"
    r = btc_api.post("/api/p2p-crypto/orders", "seller", json={
        **body, "seller_pubkey": "tprv8ZgxMBicQKsPd", "seller_refund_pubkey": "02" + "11" * 32})
    assert r.status_code == 422 and r.json()["field"] == "seller_pubkey"
    r = btc_api.post("/api/p2p-crypto/orders", "seller", json={
        **body, "seller_address": "0x" + "11" * 20,
        "seller_pubkey": btc_api.bn.seller.key(99),
        "seller_refund_pubkey": btc_api.bn.seller.key(99, 1)})
    assert r.status_code == 422 and r.json()["field"] == "seller_address"


def test_release_end_to_end(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(150_000)
    tid = trade_id(m)
    btc_api.fund(m)
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "funded"
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/payment", "buyer", json={})
    assert r.status_code == 200 and r.json()["payload"]["nothing_to_sign"] is True
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "paid"
    payload = release_psbt(btc_api, tid)
    before = received(btc_api, btc_api.bn.buyer.wallet.address)
    signed = btc_api.bn.seller.sign(payload["psbt"])
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": signed})
    assert r.status_code == 202, r.text
    txid = r.json()["ref"]
    assert txid in btc_api.bn.regtest.rpc("getrawmempool")
    btc_api.bn.sync(mine=1)
    order = btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()
    assert order["status"] == "completed" and order["escrow"]["payout_tx"] == txid
    assert received(btc_api, btc_api.bn.buyer.wallet.address) - before == \
        150_000 - payload["fee_sat"]
    # the same signed PSBT again: the escrow is spent
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": signed})
    assert r.status_code == 409


def _mutate(psbt_b64: str, fn: Any) -> str:
    p = PSBT.from_string(psbt_b64)
    fn(p)
    return str(p.to_string())


def test_mutated_psbts_are_refused(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(200_000)
    tid = trade_id(m)
    btc_api.fund(m)
    good = release_psbt(btc_api, tid)["psbt"]
    seller = btc_api.bn.seller

    def out_amount(p: PSBT) -> None:
        p.outputs[0].value -= 5_000  # the buyer's coins burnt as fee

    def extra_output(p: PSBT) -> None:
        from embit.psbt import OutputScope

        p.outputs[0].value -= 10_000
        p.outputs.append(OutputScope(vout=TransactionOutput(9_000, Script(bytes.fromhex(
            "0014" + "22" * 20)))))

    def fake_utxo(p: PSBT) -> None:
        p.inputs[0].witness_utxo.value += 50_000

    def swap_output_script(p: PSBT) -> None:
        p.outputs[0].script_pubkey = Script(bytes.fromhex("0014" + "33" * 20))

    def one_of_three_script(p: PSBT) -> None:
        # a 1-of-3 over the same keys passed off as the escrow's witness script
        ws = p.inputs[0].witness_script.data
        p.inputs[0].witness_script = Script(b"\x51" + ws[1:])

    def huge_fee(p: PSBT) -> None:
        p.outputs[0].value = 200_000 - 150_000  # 150k fee, above the cap

    cases = [
        (out_amount, {"psbt_fee_above_cap"}),
        (extra_output, {"psbt_unexpected_output"}),
        (fake_utxo, {"psbt_witness_utxo_mismatch"}),
        (swap_output_script, {"psbt_unexpected_output", "psbt_missing_output"}),
        (huge_fee, {"psbt_fee_above_cap", "psbt_output_amount_mismatch"}),
        (one_of_three_script, {"psbt_witness_script_mismatch"}),
    ]
    for fn, codes in cases:
        bad = _mutate(good, fn)
        try:
            bad = seller.sign(bad)
        except Exception:  # noqa: BLE001 - a signer may refuse a broken PSBT: send it unsigned
            pass
        r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                         json={"psbt": bad})
        assert r.status_code == 422, (fn.__name__, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"] in codes, (fn.__name__, r.json())

    # SIGHASH_NONE signature
    p = PSBT.from_string(good)
    for inp in p.inputs:
        inp.sighash_type = SIGHASH.NONE
    none_signed = PSBT.from_string(str(p.to_string()))
    none_signed.sign_with(seller.signer._root, sighash=SIGHASH.NONE)  # noqa: SLF001
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": str(none_signed.to_string())})
    assert r.status_code == 422 and r.json()["code"] == "psbt_sighash_not_all", r.text
    # no seller signature at all: the agent must not co-sign
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": good})
    assert r.status_code == 422 and r.json()["code"] == "psbt_missing_party_signature"
    # garbage
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": base64.b64encode(b"psbt\xff junk").decode()})
    assert r.status_code == 422 and r.json()["code"] == "psbt_malformed"
    # the buyer cannot release
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "buyer",
                     json={"psbt": seller.sign(good)})
    assert r.status_code == 403
    # nothing was broadcast; the good one still goes through
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()["status"] == "funded"
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": seller.sign(good)})
    assert r.status_code == 202, r.text


class BdkTrader:
    """A trader whose keys BDK generated (its own mnemonic) and who signs with
    a BDK wallet: no escrowd code touches their private key."""

    def __init__(self) -> None:
        secret = bdk.DescriptorSecretKey(
            bdk.NetworkKind.TEST, bdk.Mnemonic(bdk.WordCount.WORDS12), None)
        self.account = secret.derive(bdk.DerivationPath("m/84h/1h/0h"))

    def public(self, child: str) -> str:
        return f"{self.account.as_public()}/{child}"

    def sign(self, descriptor: str, child: str, psbt_b64: str) -> str:
        # the descriptor writes the origin with h; BDK prints it with '
        public = self.public(child).replace("'", "h")
        body = descriptor.split("#")[0]
        assert public in body
        body = body.replace(public, f"{self.account}/{child}")
        wallet = bdk.Wallet.create_single(bdk.Descriptor(body, bdk.NetworkKind.TEST),
                                          bdk.Network.REGTEST, bdk.Persister.new_in_memory())
        psbt = bdk.Psbt(psbt_b64)
        opts = bdk.SignOptions(trust_witness_utxo=True, assume_height=None,
                               allow_all_sighashes=False, try_finalize=False,
                               sign_with_tap_internal_key=False, allow_grinding=True)
        assert wallet.sign(psbt, opts) is False  # signed, not finalized (2-of-3)
        return str(psbt.serialize())


def test_bdk_signed_psbt_is_accepted(btc_api: BtcApi) -> None:
    seller = BdkTrader()
    m = btc_api.open_trade(110_000, seller_key=seller.public("0/0"),
                           seller_refund_key=seller.public("1/0"))
    tid = trade_id(m)
    btc_api.fund(m)
    payload = release_psbt(btc_api, tid)
    signed = seller.sign(m["funding"]["descriptor"], "0/0", payload["psbt"])
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": signed})
    assert r.status_code == 202, r.text
    btc_api.bn.sync(mine=1)
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()["status"] == "completed"


def test_dispute_ruled_by_agent_and_cosigned_by_buyer(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(300_000)
    tid = trade_id(m)
    btc_api.fund(m)
    btc_api.post(f"/api/p2p-crypto/orders/{tid}/payment", "buyer", json={})
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/dispute", "buyer",
                     json={"description": "paid, not released"})
    assert r.status_code == 201, r.text
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "disputed"
    dispute_id = r.json()["dispute"]["id"]
    # nothing to co-sign yet
    assert btc_api.get(f"/api/btc/orders/{tid}/payout", "buyer").status_code == 409
    r = btc_api.post(f"/api/p2p-crypto/disputes/{dispute_id}/resolve", "arbitrator",
                     json={"buyer_bps": 7000})
    assert r.status_code == 202, r.text
    assert r.json()["submitted"]["status"] == "awaiting_party_signature"
    # the agent signed the split: it never signs a conflicting release (I5)
    seller_release = btc_api.bn.seller.sign(release_psbt(btc_api, tid)["psbt"])
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": seller_release})
    assert r.status_code == 409 and r.json()["code"] == "conflicting_decision", r.text
    pending = btc_api.get(f"/api/btc/orders/{tid}/payout", "buyer").json()
    assert pending["kind"] == "split" and pending["buyer_bps"] == 7000
    # the seller's signature on it and the buyer's would both do; the buyer signs
    signed = btc_api.bn.buyer.sign(pending["psbt"])
    r = btc_api.post(f"/api/btc/orders/{tid}/payout", "outsider", json={"psbt": signed})
    assert r.status_code == 404
    r = btc_api.post(f"/api/btc/orders/{tid}/payout", "buyer", json={"psbt": signed})
    assert r.status_code == 202, r.text
    btc_api.bn.sync(mine=1)
    order = btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()
    assert order["status"] == "resolved" and order["escrow"]["buyer_bps"] == 7000
    outs = {o["script"]: o["amount_sat"] for o in pending["outputs"]}
    assert len(outs) == 2


def test_fee_bump_by_rbf(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(250_000)
    tid = trade_id(m)
    btc_api.fund(m)
    payload = release_psbt(btc_api, tid)
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/release-escrow", "seller",
                     json={"psbt": btc_api.bn.seller.sign(payload["psbt"])})
    first = r.json()["ref"]
    r = btc_api.post(f"/api/btc/orders/{tid}/bump", "seller", json={"feerate_sat_vb": 25})
    assert r.status_code == 202, r.text
    pending = btc_api.get(f"/api/btc/orders/{tid}/payout", "seller").json()
    assert pending["fee_sat"] > payload["fee_sat"]
    r = btc_api.post(f"/api/btc/orders/{tid}/payout", "seller",
                     json={"psbt": btc_api.bn.seller.sign(pending["psbt"])})
    assert r.status_code == 202, r.text
    second = r.json()["ref"]
    mempool = btc_api.bn.regtest.rpc("getrawmempool")
    assert second in mempool and first not in mempool  # replaced
    btc_api.bn.sync(mine=1)
    order = btc_api.get(f"/api/p2p-crypto/orders/{tid}", "seller").json()
    assert order["status"] == "completed" and order["escrow"]["payout_tx"] == second


def test_buyer_cancel_refunds_the_seller(btc_api: BtcApi) -> None:
    m = btc_api.open_trade(90_000)
    tid = trade_id(m)
    btc_api.fund(m)
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/cancel-escrow", "buyer", json={})
    assert r.status_code == 200, r.text
    r = btc_api.post(f"/api/p2p-crypto/orders/{tid}/cancel-escrow", "buyer",
                     json={"psbt": btc_api.bn.buyer.sign(r.json()["payload"]["psbt"])})
    assert r.status_code == 202, r.text
    btc_api.bn.sync(mine=1)
    assert btc_api.get(f"/api/p2p-crypto/orders/{tid}", "buyer").json()["status"] == "refunded"
