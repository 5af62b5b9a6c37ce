"""The ledger's pure checks: legs balance per asset, malformed legs are refused,
the fingerprint ignores leg order, account names and guards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.custody.errors import UnbalancedEntryError
from node.custody.ledger import Leg, digest, is_guarded, net_legs, user_account


def test_net_per_account_and_asset() -> None:
    legs = [
        Leg("a", "BTC", 5),
        Leg("a", "BTC", 3),
        Leg("b", "BTC", -8),
        Leg("a", "ETH", 1),
        Leg("c", "ETH", -1),
    ]
    assert net_legs(legs) == {("a", "BTC"): 8, ("b", "BTC"): -8, ("a", "ETH"): 1, ("c", "ETH"): -1}


@pytest.mark.parametrize(
    "legs",
    [
        [],
        [Leg("a", "BTC", 5), Leg("b", "BTC", -4)],
        [Leg("a", "BTC", 5), Leg("b", "ETH", -5)],
        [Leg("a", "BTC", 0)],
        [Leg("a", "BTC", True), Leg("b", "BTC", -1)],
        [Leg("", "BTC", 1), Leg("b", "BTC", -1)],
        [Leg("a", "", 1), Leg("b", "", -1)],
        [Leg("a", "BTC", 1.0), Leg("b", "BTC", -1)],  # type: ignore[arg-type]
    ],
)
def test_bad_legs_are_refused(legs: list[Leg]) -> None:
    with pytest.raises(UnbalancedEntryError):
        net_legs(legs)


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 2**80)), min_size=1, max_size=6),
    st.randoms(),
)
def test_digest_ignores_order(parts: list[tuple[str, int]], rnd) -> None:  # type: ignore[no-untyped-def]
    legs = [Leg(a, "BTC", n) for a, n in parts] + [Leg("z", "BTC", -sum(n for _, n in parts))]
    shuffled = list(legs)
    rnd.shuffle(shuffled)
    assert net_legs(shuffled) == net_legs(legs)
    assert digest("k", shuffled) == digest("k", legs) != digest("other", legs)


def test_accounts_and_guards() -> None:
    assert user_account(7, "available") == "user:7:available"
    assert is_guarded("user:7:available") and is_guarded("user:7:held")
    assert not is_guarded("user:7:debt") and not is_guarded("node:hot") and not is_guarded("fees")
    with pytest.raises(UnbalancedEntryError):
        user_account(0, "available")
    with pytest.raises(UnbalancedEntryError):
        user_account(1, "spare")  # type: ignore[arg-type]
