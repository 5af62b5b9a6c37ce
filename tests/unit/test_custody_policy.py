"""The withdrawal policy: each rule refuses with its own code, in order, and
limits count the rolling 24-hour window up to and including the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.custody.policy import Decision, PolicyInput, decide

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def inp(**kw: object) -> PolicyInput:
    base: dict[str, object] = {
        "amount": 100,
        "now": NOW,
        "allowed_from": NOW - timedelta(days=2),
        "user_recent": 0,
        "global_recent": 0,
        "user_limit": 1_000,
        "global_limit": 10_000,
    }
    base.update(kw)
    return PolicyInput(**base)  # type: ignore[arg-type]


def test_allowed() -> None:
    assert decide(inp()) == Decision(True)
    assert decide(inp(user_limit=None, global_limit=None, user_recent=10**30)).allowed


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"amount": 0}, "amount_invalid"),
        ({"amount": -5}, "amount_invalid"),
        ({"amount": True}, "amount_invalid"),
        ({"allowed_from": None}, "address_not_allowed"),
        ({"allowed_from": NOW + timedelta(seconds=1)}, "address_in_delay"),
        ({"user_recent": 901}, "user_daily_limit"),
        ({"global_recent": 9_901}, "global_daily_limit"),
        # the first failing rule names the refusal
        ({"allowed_from": None, "user_recent": 10**9}, "address_not_allowed"),
        ({"user_recent": 10**9, "global_recent": 10**9}, "user_daily_limit"),
    ],
)
def test_refusals(kw: dict[str, object], code: str) -> None:
    d = decide(inp(**kw))
    assert not d.allowed and d.code == code and d.reason


def test_limits_are_inclusive_and_delay_ends_on_time() -> None:
    assert decide(inp(user_recent=900)).allowed
    assert decide(inp(global_recent=9_900)).allowed
    assert decide(inp(allowed_from=NOW)).allowed


@given(st.integers(1, 10**20), st.integers(0, 10**20), st.integers(1, 10**20))
def test_user_limit_property(amount: int, recent: int, limit: int) -> None:
    d = decide(inp(amount=amount, user_recent=recent, user_limit=limit, global_limit=None))
    assert d.allowed == (recent + amount <= limit)
