"""The custody ledger on real PostgreSQL: entries balance, refs are idempotent,
user accounts never go negative, holds move funds between buckets, every
balance equals the sum of its legs, and concurrent posts to one account stay
consistent."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from node.custody.errors import InsufficientFundsError, RefConflictError, UnbalancedEntryError
from node.custody.ledger import (
    NODE_DEPOSIT,
    Leg,
    balance,
    check_balances,
    hold,
    legs_sum,
    post_entry,
    release_hold,
    user_account,
    user_balances,
)
from node.db.session import transaction

AVAIL = user_account(7, "available")
HELD = user_account(7, "held")


def deposit(session: Session, amount: int, ref: str, user: int = 7, asset: str = "BTC") -> int:
    return post_entry(
        session,
        ref=ref,
        kind="deposit",
        legs=[
            Leg(user_account(user, "available"), asset, amount),
            Leg(NODE_DEPOSIT, asset, -amount),
        ],
    )


def test_balanced_entry_and_balance_is_sum_of_legs(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        deposit(s, 5_000, "d1")
        deposit(s, 2**200, "d2", asset="ETH")  # wei-sized amounts stay exact
    with sessions() as s:
        assert balance(s, AVAIL, "BTC") == 5_000 == legs_sum(s, AVAIL, "BTC")
        assert balance(s, NODE_DEPOSIT, "BTC") == -5_000
        assert balance(s, AVAIL, "ETH") == 2**200 == legs_sum(s, AVAIL, "ETH")
        assert balance(s, "nobody", "BTC") == 0
        assert check_balances(s) == []


def test_unbalanced_entry_is_refused_whole(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(UnbalancedEntryError) as err:
        post_entry(
            s, ref="x", kind="deposit", legs=[Leg(AVAIL, "BTC", 5), Leg(NODE_DEPOSIT, "BTC", -4)]
        )
    assert err.value.code == "unbalanced_entry" and err.value.http_status == 422
    with sessions() as s, pytest.raises(UnbalancedEntryError):  # balanced in sum, not per asset
        post_entry(
            s, ref="x", kind="swap", legs=[Leg(AVAIL, "BTC", 5), Leg(NODE_DEPOSIT, "ETH", -5)]
        )
    with sessions() as s:
        assert balance(s, AVAIL, "BTC") == 0 and check_balances(s) == []


def test_same_ref_posts_once_and_different_legs_conflict(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        first = deposit(s, 100, "dep:tx1:0")
    with transaction(sessions) as s:
        assert deposit(s, 100, "dep:tx1:0") == first
    with sessions() as s:
        assert balance(s, AVAIL, "BTC") == 100
    with transaction(sessions) as s, pytest.raises(RefConflictError) as err:
        deposit(s, 101, "dep:tx1:0")
    assert err.value.code == "ref_conflict"


def test_user_accounts_never_go_negative(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        deposit(s, 100, "d1")
    with transaction(sessions) as s, pytest.raises(InsufficientFundsError) as err:
        post_entry(
            s,
            ref="w",
            kind="withdraw",
            legs=[Leg(AVAIL, "BTC", -101), Leg(NODE_DEPOSIT, "BTC", 101)],
        )
    assert err.value.code == "insufficient_funds" and 400 <= err.value.http_status < 500
    with transaction(sessions) as s, pytest.raises(InsufficientFundsError):
        hold(s, user_id=7, asset="BTC", amount=101, ref="h-too-much")
    with transaction(sessions) as s, pytest.raises(InsufficientFundsError):
        release_hold(s, user_id=7, asset="BTC", amount=1, ref="r-nothing-held")
    with sessions() as s:
        assert balance(s, AVAIL, "BTC") == 100 and check_balances(s) == []


def test_hold_and_release(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        deposit(s, 1_000, "d1")
        hold(s, user_id=7, asset="BTC", amount=300, ref="order:1:hold")
        hold(s, user_id=7, asset="BTC", amount=300, ref="order:1:hold")  # idempotent
    with sessions() as s:
        assert (balance(s, AVAIL, "BTC"), balance(s, HELD, "BTC")) == (700, 300)
    with transaction(sessions) as s:
        release_hold(s, user_id=7, asset="BTC", amount=100, ref="order:1:release:1")
    with sessions() as s:
        assert user_balances(s, 7) == {"BTC": {"available": 800, "held": 200, "debt": 0}}
        assert check_balances(s) == []
    with sessions() as s, pytest.raises(UnbalancedEntryError):
        hold(s, user_id=7, asset="BTC", amount=0, ref="zero")


def test_rolled_back_transaction_posts_nothing(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as s:
        deposit(s, 100, "d1")
        raise RuntimeError("the caller's work failed after posting")
    with sessions() as s:
        assert balance(s, AVAIL, "BTC") == 0 and legs_sum(s, AVAIL, "BTC") == 0


def test_concurrent_posts_to_one_account_stay_consistent(sessions: sessionmaker[Session]) -> None:
    """Two threads spend from one account at once: exactly the funded amount
    is spent, never more, and the cache equals the legs afterwards."""
    with transaction(sessions) as s:
        deposit(s, 60, "d1")
    spent: list[int] = []
    refused: list[int] = []
    gate = threading.Barrier(2)

    def spender(n: int) -> None:
        gate.wait()
        for i in range(50):
            try:
                with transaction(sessions) as s:
                    hold(s, user_id=7, asset="BTC", amount=1, ref=f"t{n}:{i}")
                spent.append(1)
            except InsufficientFundsError:
                refused.append(1)

    threads = [threading.Thread(target=spender, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spent) == 60 and len(refused) == 40
    with sessions() as s:
        assert (balance(s, AVAIL, "BTC"), balance(s, HELD, "BTC")) == (0, 60)
        assert check_balances(s) == []


def test_concurrent_same_ref_posts_once(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        deposit(s, 10, "d1")
    ids: list[int] = []
    gate = threading.Barrier(4)

    def poster() -> None:
        gate.wait()
        with transaction(sessions) as s:
            ids.append(hold(s, user_id=7, asset="BTC", amount=4, ref="same"))

    threads = [threading.Thread(target=poster) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    with sessions() as s:
        assert balance(s, HELD, "BTC") == 4 and check_balances(s) == []


def test_ledger_on_sqlite(tmp_path: Path) -> None:
    """The embedded default: the same entries, holds and checks on SQLite
    (amounts kept exact beyond 2**53 in its string columns)."""
    from node.db.migrate import upgrade
    from node.db.session import make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with transaction(factory) as s:
            deposit(s, 2**100 + 1, "d1", asset="ETH")
            deposit(s, 2**100 + 1, "d1", asset="ETH")  # idempotent
            hold(s, user_id=7, asset="ETH", amount=2**99, ref="h1")
        with transaction(factory) as s, pytest.raises(InsufficientFundsError):
            hold(s, user_id=7, asset="ETH", amount=2**100, ref="h2")
        with factory() as s:
            assert balance(s, AVAIL, "ETH") == 2**99 + 1 == legs_sum(s, AVAIL, "ETH")
            assert balance(s, NODE_DEPOSIT, "ETH") == -(2**100 + 1)
            assert check_balances(s) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", [1])
def test_random_operations_match_a_model(sessions: sessionmaker[Session], seed: int) -> None:
    """Random deposits, holds, releases and transfers between users, each in
    its own transaction, against a plain model: same balances, refusals
    exactly where the model goes negative, cache == legs, zero sum."""
    import random

    rnd = random.Random(seed)
    model: dict[tuple[str, str], int] = {}

    def apply(legs: list[Leg]) -> bool:
        after = dict(model)
        for leg in legs:
            after[(leg.account, leg.asset)] = after.get((leg.account, leg.asset), 0) + leg.amount
        ok = all(v >= 0 for (a, _s), v in after.items() if a.startswith("user:"))
        if ok:
            model.clear()
            model.update(after)
        return ok

    for i in range(150):
        u, v = rnd.randint(1, 4), rnd.randint(1, 4)
        asset = rnd.choice(["BTC", "ETH"])
        amount = rnd.randint(1, 1_000)
        op = rnd.choice(["deposit", "hold", "release", "transfer"])
        if op == "deposit":
            legs = [
                Leg(user_account(u, "available"), asset, amount),
                Leg(NODE_DEPOSIT, asset, -amount),
            ]
        elif op == "hold":
            legs = [
                Leg(user_account(u, "available"), asset, -amount),
                Leg(user_account(u, "held"), asset, amount),
            ]
        elif op == "release":
            legs = [
                Leg(user_account(u, "held"), asset, -amount),
                Leg(user_account(u, "available"), asset, amount),
            ]
        else:
            legs = [
                Leg(user_account(u, "held"), asset, -amount),
                Leg(user_account(v, "available"), asset, amount),
            ]
        expected = apply(legs)
        try:
            with transaction(sessions) as s:
                post_entry(s, ref=f"op:{i}", kind=op, legs=legs)
            posted = True
        except InsufficientFundsError:
            posted = False
        assert posted == expected, (i, op, legs)
    with sessions() as s:
        for (account, asset), value in model.items():
            assert balance(s, account, asset) == value == legs_sum(s, account, asset)
        assert check_balances(s) == []
