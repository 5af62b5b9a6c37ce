"""Signed rulings on a real node (anvil + PostgreSQL): an arbitrator with a
registered EVM key must sign the ruling (EIP-712); the node refuses a missing,
foreign, altered or stale signature before anything is co-signed, then
co-signs the payout on chain, stores the signed ruling and audits it. A
keyless arbitrator's unsigned ruling is refused when the settings require
signatures (production default)."""

from __future__ import annotations

from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_typed_data
from sqlalchemy import select

from node.accounts.audit import AuditFilter, list_audit
from node.db.session import transaction
from node.disputes import ruling
from tests.api.conftest import Api
from tests.api.disputes_fixtures import *  # noqa: F403
from tests.api.disputes_fixtures import People, disputed
from tests.api.test_api_p2p_orders import status

P = "/api/p2p-crypto/disputes"


def test_signed_ruling_is_checked_cosigned_stored_and_audited(api: Api, people: People) -> None:
    t, d = disputed(api)
    # the keyless arbitrator it was assigned to may not rule unsigned in production
    api.node.settings.disputes.allow_unsigned_rulings = False
    r = api.post(f"{P}/{d}/resolve", "arbitrator", json={"buyer_bps": 3000})
    assert r.status_code == 403 and r.json()["code"] == "signed_ruling_required"
    assert api.post(f"{P}/{d}/assign", "admin",
                    json={"arbitrator_user_id": people.arb2_id}).status_code == 200

    notes = "buyer showed a partial transfer"
    r = api.post(f"{P}/{d}/resolve", "arb2", json={"buyer_bps": 3000, "resolution_notes": notes})
    assert r.status_code == 422 and r.json()["code"] == "ruling_signature_required"

    draft = api.post(f"{P}/{d}/ruling-payload", "arb2",
                     json={"buyer_bps": 3000, "resolution_notes": notes})
    assert draft.status_code == 200, draft.text
    to_sign = draft.json()
    msg = to_sign["typed_data"]["message"]
    assert msg["disputeId"] == d and msg["tradeId"] == t and msg["buyerBps"] == 3000
    assert msg["chain"].startswith("evm:") and msg["reasonHash"] == ruling.reason_hash(notes)
    ts = to_sign["timestamp"]

    def sign(key: str, typed: dict[str, object]) -> str:
        signed = Account.sign_message(encode_typed_data(full_message=typed), key)
        return "0x" + bytes(signed.signature).hex()

    good = sign(people.arb2_key, to_sign["typed_data"])
    base = {"buyer_bps": 3000, "resolution_notes": notes, "timestamp": ts}
    # someone else's key; the same signature for another split or other reasons; stale
    wrong_key = sign(api.chain.accounts[5].key, to_sign["typed_data"])
    for body, code in (
        ({**base, "ruling_signature": wrong_key}, "bad_ruling_signature"),
        ({**base, "buyer_bps": 10_000, "ruling_signature": good}, "bad_ruling_signature"),
        ({**base, "resolution_notes": "other", "ruling_signature": good}, "bad_ruling_signature"),
        ({**base, "timestamp": ts - 7200, "ruling_signature": good}, "ruling_timestamp"),
        ({**base, "ruling_signature": "0x1234"}, "invalid_input"),
    ):
        r = api.post(f"{P}/{d}/resolve", "arb2", json=body)
        assert r.status_code in (409, 422) and r.json()["code"] == code, (body, r.text)
    assert status(api, t)["status"] == "disputed"  # nothing was co-signed

    seller_before = api.chain.w3.eth.get_balance(api.chain.seller.address)
    r = api.post(f"{P}/{d}/resolve", "arb2", json={**base, "ruling_signature": good})
    assert r.status_code == 202, r.text
    stored = r.json()["ruling"]
    assert stored["scheme"] == "eip712" and stored["signature"] == good
    assert stored["signer_address"] == people.arb2_address and stored["signed_at"] == ts
    api.sync()
    got = status(api, t)
    assert got["status"] == "resolved" and got["escrow"]["buyer_bps"] == 3000
    assert api.chain.w3.eth.get_balance(api.chain.seller.address) - seller_before == 7 * 10**17

    # the stored ruling verifies on its own: its typed data recovers to the arbitrator
    detail = api.get(f"{P}/{d}", "seller").json()
    assert detail["case"]["stage"] == "ruled" and detail["dispute"]["status"] == "resolved"
    typed = detail["ruling"]["typed_data"]
    assert Account.recover_message(encode_typed_data(full_message=typed),
                                   signature=bytes.fromhex(good[2:])) == people.arb2_address
    with transaction(api.node.sessions) as s:
        rows, n = list_audit(s, where=AuditFilter(action="dispute.ruled"))
        assert n == 1 and rows[0].actor_id == people.arb2_id
        assert rows[0].subject == f"dispute:{d}" and rows[0].details["buyer_bps"] == 3000
        from node.db.models_disputes_ext import TradeEvent

        kinds = s.scalars(select(TradeEvent.kind).where(TradeEvent.p2p_order_id == t)).all()
    assert "dispute.ruled" in kinds and "trade.resolved" in kinds
    # a second ruling is refused
    r = api.post(f"{P}/{d}/resolve", "arb2", json={**base, "ruling_signature": good})
    assert r.status_code == 409
    assert datetime.now(UTC).timestamp() - ts < 3600
