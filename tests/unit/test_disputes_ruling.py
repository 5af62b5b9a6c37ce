"""The arbitrator's EIP-712 ruling: signed by their key it verifies; any
change of a signed field, another key, or a malformed signature is refused;
stale and future timestamps are refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account

from node.disputes import ruling
from node.disputes.ruling import RulingTerms
from node.errors import SigningError, ValidationError

KEY = "0x" + "11" * 32
OTHER = "0x" + "22" * 32
ADDR = Account.from_key(KEY).address
TERMS = RulingTerms(
    dispute_id=7, trade_id=42, chain="evm:31337", escrow="0x" + "ab" * 32, buyer_bps=3000,
    reason_hash=ruling.reason_hash("seller proved delivery"), timestamp=1_800_000_000,
)


def test_signed_ruling_verifies_and_recovers_the_arbitrator() -> None:
    sig = ruling.sign(TERMS, KEY)
    assert ruling.recover(TERMS, sig) == ADDR
    ruling.verify(TERMS, sig, arbitrator_address=ADDR.lower())
    assert ruling.digest(TERMS).startswith("0x") and len(ruling.digest(TERMS)) == 66


@pytest.mark.parametrize(
    "change",
    [
        {"dispute_id": 8},
        {"trade_id": 43},
        {"chain": "evm:1"},
        {"escrow": "0x" + "cd" * 32},
        {"buyer_bps": 3001},
        {"reason_hash": ruling.reason_hash("other reasons")},
        {"timestamp": 1_800_000_001},
    ],
)
def test_any_changed_field_breaks_the_signature(change: dict[str, object]) -> None:
    sig = ruling.sign(TERMS, KEY)
    with pytest.raises(SigningError) as err:
        ruling.verify(replace(TERMS, **change), sig, arbitrator_address=ADDR)  # type: ignore[arg-type]
    assert err.value.code == "bad_ruling_signature"


def test_another_key_or_garbage_is_refused() -> None:
    with pytest.raises(SigningError):
        ruling.verify(TERMS, ruling.sign(TERMS, OTHER), arbitrator_address=ADDR)
    with pytest.raises(ValidationError):
        ruling.verify(TERMS, "0x1234", arbitrator_address=ADDR)
    with pytest.raises(ValidationError):
        ruling.verify(TERMS, "zz" * 65, arbitrator_address=ADDR)
    with pytest.raises(SigningError):
        ruling.verify(TERMS, "0x" + "00" * 65, arbitrator_address=ADDR)


def test_buyer_bps_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError):
        ruling.typed_data(replace(TERMS, buyer_bps=10_001))


def test_freshness() -> None:
    now = 1_800_000_000
    ruling.check_fresh(now - 3600, now=now, max_age_s=3600, max_skew_s=60)
    ruling.check_fresh(now + 60, now=now, max_age_s=3600, max_skew_s=60)
    with pytest.raises(ValidationError):
        ruling.check_fresh(now - 3601, now=now, max_age_s=3600, max_skew_s=60)
    with pytest.raises(ValidationError):
        ruling.check_fresh(now + 61, now=now, max_age_s=3600, max_skew_s=60)


def test_reason_hash_is_sha256_of_utf8() -> None:
    import hashlib

    assert ruling.reason_hash("é") == "0x" + hashlib.sha256("é".encode()).hexdigest()
