"""Fee and amount math: conservation, dust refusal, rounding, and the vsize bound.

Proves (hypothesis properties where they fit): for every split
``buyer + seller + fee == total`` with the buyer bearing ``floor`` of its
proportional fee share; built PSBTs spend exactly their inputs
(``outputs + fee == inputs``) or refuse with ``DustOutputError`` exactly when a
payout would be dust; the fee is ``ceil(feerate * vsize)`` with fractional
feerates; the witness-size estimate for the 2-of-3 branch equals BDK's
``max_weight_to_satisfy`` (rust-miniscript); dust thresholds equal Bitcoin
Core's for each output type.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from fractions import Fraction

import bdkpython as bdk
import pytest
from embit import ec
from embit.psbt import PSBT
from embit.script import Script
from hypothesis import given, settings
from hypothesis import strategies as st

from wallets.bitcoin import (
    REGTEST,
    DustOutputError,
    Escrow,
    FundingOutput,
    InsufficientFundsError,
    Ruling,
    SpendPath,
    build_payout_psbt,
    dust_threshold,
    split_amounts,
)
from wallets.bitcoin.amounts import fee_for_vsize, payout_vsize, witness_weight

NET = REGTEST


def _pub(label: str) -> str:
    return str(ec.PrivateKey(hashlib.sha256(label.encode()).digest()).get_public_key()
               .sec().hex())


ESCROW = Escrow.create(buyer_key=_pub("b"), seller_key=_pub("s"), arbitrator_key=_pub("a"),
                       seller_refund_key=_pub("r"), csv_blocks=4032, network=NET)
BUYER = Script(b"\x00\x14" + b"\x01" * 20).address(NET.embit_params)
SELLER = Script(b"\x51\x20" + b"\x02" * 32).address(NET.embit_params)  # taproot payout


@given(total=st.integers(1, 21_000_000 * 10**8), bps=st.integers(1, 9_999), data=st.data())
def test_split_conserves_and_rounds_for_the_seller(total: int, bps: int,
                                                   data: st.DataObject) -> None:
    fee = data.draw(st.integers(0, total))
    buyer, seller = split_amounts(total, bps, fee)
    assert buyer + seller + fee == total
    assert buyer >= 0 and seller >= 0
    buyer_gross = total * bps // 10_000
    buyer_fee = buyer_gross - buyer
    # the buyer pays floor of its exact proportional share; the seller any rounding
    assert buyer_fee == fee * buyer_gross // total
    assert Fraction(fee * buyer_gross, total) - 1 < buyer_fee <= Fraction(fee * buyer_gross,
                                                                          total)


@given(total=st.integers(1, 10**12), bps=st.integers(1, 9_998), fee=st.integers(0, 10**6))
def test_split_monotone_in_bps(total: int, bps: int, fee: int) -> None:
    if fee > total:
        with pytest.raises(InsufficientFundsError):
            split_amounts(total, bps, fee)
        return
    assert split_amounts(total, bps, fee)[0] <= split_amounts(total, bps + 1, fee)[0]


def test_split_bps_bounds() -> None:
    for bps in (0, 10_000, -1):
        with pytest.raises(ValueError):
            split_amounts(1_000, bps, 0)


def _funding(amounts: list[int]) -> list[FundingOutput]:
    return [FundingOutput(hashlib.sha256(bytes([i])).hexdigest(), i, a,
                          ESCROW.script.script_pubkey) for i, a in enumerate(amounts)]


RULINGS = st.one_of(
    st.just(Ruling.release(BUYER, network=NET)),
    st.just(Ruling.refund(SELLER, network=NET)),
    st.just(Ruling.timelock_refund(SELLER, network=NET)),
    st.integers(1, 9_999).map(lambda b: Ruling.split(BUYER, SELLER, b, network=NET)),
)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 5 * 10**8), min_size=1, max_size=3),
    ruling=RULINGS,
    feerate=st.one_of(st.integers(1, 500),
                      st.decimals(Decimal("0.1"), Decimal("50"), places=3)),
)
def test_built_psbt_conserves_value_or_refuses_dust(
    amounts: list[int], ruling: Ruling, feerate: int | Decimal
) -> None:
    funding = _funding(amounts)
    vsize = payout_vsize(n_inputs=len(amounts), output_scripts=ruling.output_scripts(),
                         witness_script_len=len(ESCROW.script.witness_script), path=ruling.path)
    fee = fee_for_vsize(vsize, feerate)
    total = sum(amounts)
    try:
        expected = ruling.outputs(total, fee)
    except InsufficientFundsError:
        with pytest.raises(InsufficientFundsError):
            build_payout_psbt(ESCROW.script, funding, ruling, feerate_sat_vb=feerate)
        return
    if any(amount < dust_threshold(spk) for spk, amount in expected):
        with pytest.raises(DustOutputError):
            build_payout_psbt(ESCROW.script, funding, ruling, feerate_sat_vb=feerate)
        return
    built = build_payout_psbt(ESCROW.script, funding, ruling, feerate_sat_vb=feerate)
    psbt = PSBT.from_string(built.psbt)
    paid = [(o.script_pubkey.data, o.value) for o in psbt.outputs]
    assert paid == expected == list(built.outputs)
    assert sum(a for _, a in paid) + built.fee_sat == total == sum(
        i.witness_utxo.value for i in psbt.inputs)
    assert built.fee_sat == fee and Fraction(fee) >= Fraction(feerate) * vsize
    assert all(amount >= dust_threshold(spk) for spk, amount in paid)


def test_dust_refusal_names_the_output() -> None:
    ruling = Ruling.split(BUYER, SELLER, 1, network=NET)
    with pytest.raises(DustOutputError) as err:
        build_payout_psbt(ESCROW.script, _funding([100_000]), ruling, feerate_sat_vb=1)
    assert err.value.fields["output"] == "buyer"
    assert err.value.fields["dust_threshold_sat"] == 294


def test_fee_larger_than_escrow_refused() -> None:
    with pytest.raises(InsufficientFundsError):
        build_payout_psbt(ESCROW.script, _funding([1_000]), Ruling.release(BUYER, network=NET),
                          feerate_sat_vb=100)


@pytest.mark.parametrize(
    ("spk", "threshold"),
    [(b"\x00\x14" + b"\x00" * 20, 294), (b"\x00\x20" + b"\x00" * 32, 330),
     (b"\x51\x20" + b"\x00" * 32, 330), (b"\x76\xa9\x14" + b"\x00" * 20 + b"\x88\xac", 546),
     (b"\xa9\x14" + b"\x00" * 20 + b"\x87", 540)],
    ids=["p2wpkh", "p2wsh", "p2tr", "p2pkh", "p2sh"],
)
def test_dust_thresholds_match_bitcoin_core(spk: bytes, threshold: int) -> None:
    assert dust_threshold(spk) == threshold


def test_fee_is_ceiling_of_fractional_rate() -> None:
    assert fee_for_vsize(157, Decimal("1.5")) == 236  # 235.5 -> 236
    assert fee_for_vsize(157, 2) == 314
    assert fee_for_vsize(100, Fraction(1, 3)) == 34
    with pytest.raises(ValueError):
        fee_for_vsize(100, 0)
    with pytest.raises(TypeError):
        fee_for_vsize(100, 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("csv", [1, 16, 17, 144, 4032, 65535])
def test_multisig_witness_weight_equals_bdk_max_weight_to_satisfy(csv: int) -> None:
    escrow = Escrow.create(buyer_key=_pub("b"), seller_key=_pub("s"), arbitrator_key=_pub("a"),
                           seller_refund_key=_pub("r"), csv_blocks=csv, network=NET)
    bdk_weight = bdk.Descriptor(escrow.descriptor, bdk.NetworkKind.TEST).max_weight_to_satisfy()
    ws_len = len(escrow.script.witness_script)
    # BDK counts the satisfaction without the witness-count byte (the 2-of-3 branch is
    # the heavier one, so it is the maximum)
    assert witness_weight(ws_len, SpendPath.MULTISIG) == bdk_weight + 1
    assert witness_weight(ws_len, SpendPath.TIMELOCK) < witness_weight(ws_len,
                                                                        SpendPath.MULTISIG)
