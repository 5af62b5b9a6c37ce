"""Fee ladders (wallets.bitcoin.ladder): rungs rise by the step and by at
least the BIP-125 increment, stop at the cap; the next rung is the cheapest
that replaces the current payout; per-rung caps grow with the step."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallets.bitcoin.ladder import LadderRung, fee_ladder, next_rung, rung_fee_cap, stuck_for


def test_ladder_doubles_from_the_proposed_fee() -> None:
    assert fee_ladder(1, 200, rungs=3, max_fee_sat=100_000) == [200, 400, 800, 1600]
    assert fee_ladder(Fraction(3, 2), 100, rungs=2, max_fee_sat=100_000) == [150, 300, 600]


def test_ladder_stops_at_the_cap() -> None:
    assert fee_ladder(10, 200, rungs=5, max_fee_sat=9_000) == [2000, 4000, 8000]
    # rung 0 is returned even above the cap: the payout's own check refuses it
    assert fee_ladder(100, 200, rungs=3, max_fee_sat=1_000) == [20_000]


@given(rate=st.integers(1, 500), vsize=st.integers(60, 2_000), rungs=st.integers(0, 8),
       step=st.integers(2, 4))
def test_every_rung_replaces_the_one_below(rate: int, vsize: int, rungs: int,
                                           step: int) -> None:
    fees = fee_ladder(rate, vsize, rungs=rungs, step=step, max_fee_sat=10**8)
    assert fees[0] == rate * vsize
    for low, high in zip(fees, fees[1:], strict=False):
        assert high >= low + vsize  # BIP-125 rule 4 at 1 sat/vB
        assert high >= low * step


def test_bad_ladder_parameters() -> None:
    for kw in ({"rungs": -1}, {"step": 1}):
        with pytest.raises(ValueError):
            fee_ladder(1, 100, max_fee_sat=10_000, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fee_ladder(1, 0, max_fee_sat=10_000)


def test_next_rung_is_the_cheapest_replacement() -> None:
    rungs = [LadderRung(800, "c"), LadderRung(400, "b"), LadderRung(1600, "d")]
    assert next_rung(rungs, 200, 200) == LadderRung(400, "b")
    assert next_rung(rungs, 400, 200) == LadderRung(800, "c")
    # 700 + 200 (increment) > 800: the 800 rung does not replace a 700 sat payout
    assert next_rung(rungs, 700, 200) == LadderRung(1600, "d")
    assert next_rung(rungs, 1600, 200) is None
    assert next_rung([], 100, 200) is None


def test_rung_caps_and_stuck_blocks() -> None:
    assert rung_fee_cap(600, 1, max_fee_sat=100_000) == 1200
    assert rung_fee_cap(600, 3, max_fee_sat=100_000) == 4800
    assert rung_fee_cap(600, 10, max_fee_sat=100_000) == 100_000
    with pytest.raises(ValueError):
        rung_fee_cap(600, -1, max_fee_sat=100_000)
    assert stuck_for(100, 103) == 3
    assert stuck_for(100, 99) == 0  # a reorg below the broadcast height
