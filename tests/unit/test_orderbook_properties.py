"""Properties of the engine and its ledger over random command streams (limit
orders of every time in force, market, stop-market, stop-limit, OCO, trailing
stops, cancels, amends, clock ticks, every self-trade mode): after every
command the book at rest is never crossed and its caches agree, no order fills
more than its quantity, the ledger balances per asset with no negative user
bucket and every live order's hold is what the ledger holds; at the end the
ledger equals the sum of its journal; replaying the command log rebuilds the
identical book and ledger; folding the recorded event log (no matching) also
rebuilds the identical book, and the rebuilt engine then gives exactly the
events and book the original gives for the rest of the stream; the custody
ledger's balance may be set between commands (``SetFunds``); recovering from
any recorded prefix of the event log gives exactly the missing events, and a
log whose recorded events differ is refused. Hypothesis runs derandomized
with fixed example counts."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.orderbook import (
    STP,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    Engine,
    Event,
    Fill,
    Ledger,
    OrderAccepted,
    OrderType,
    PairSpec,
    PlaceOrder,
    ReplayMismatchError,
    SetFunds,
    Side,
    Tick,
    TimeInForce,
)

PAIR = PairSpec(
    symbol="T/Q", base_asset="T", quote_asset="Q", tick_size=10, step_size=100,
    min_price=10, max_price=100_000, min_quantity=100, max_quantity=1_000_000,
    price_scale=1000, maker_fee_bps=7, taker_fee_bps=23,
)
USERS = (1, 2, 3, 4)
TYPES = list(OrderType)
TIFS = list(TimeInForce)
STPS = [None, *STP]

raw_command = st.tuples(
    st.integers(0, 13),  # what
    st.integers(0, 3),  # user
    st.booleans(),  # side
    st.integers(-6, 6),  # price offset in ticks around 1000
    st.integers(1, 30),  # quantity in steps
    st.integers(0, 40),  # misc: tif, stop distance, target, trail
    st.integers(0, 4),  # stp
)
streams = st.lists(raw_command, min_size=30, max_size=150)


def build(raw: list[tuple[int, int, bool, int, int, int, int]]) -> list[Command]:
    """Turn raw tuples into a command stream (deterministic, shrinks well)."""
    cmds: list[Command] = [Deposit(u, a, 30_000, ref=f"d{u}{a}") for u in USERS for a in "TQ"]
    ts = 0
    next_id = 1
    placed: list[int] = []
    owner: dict[int, int] = {}
    for what, u, buy, off, steps, misc, stp_i in raw:
        ts += 1 + misc % 3
        user = USERS[u]
        side = Side.BUY if buy else Side.SELL
        price = 1000 + 10 * off
        qty = 100 * steps
        stp = STPS[stp_i]
        if what <= 5:  # limit, any time in force
            tif = TIFS[misc % 4]
            exp = ts + 1 + misc if tif is TimeInForce.GTD else None
            cmd: Command = PlaceOrder(next_id, user, side, OrderType.LIMIT, qty, price,
                                      time_in_force=tif, expires_at=exp, stp=stp, ts=ts)
        elif what == 6:
            cmd = PlaceOrder(next_id, user, side, OrderType.MARKET, qty, stp=stp, ts=ts,
                             time_in_force=TimeInForce.FOK if misc % 5 == 0 else TimeInForce.IOC)
        elif what in (7, 8):  # stop-market / stop-limit beyond the middle
            sign = 1 if buy else -1
            stop = 1000 + sign * 10 * (1 + misc % 5)
            otype = OrderType.STOP_MARKET if what == 7 else OrderType.STOP_LIMIT
            limit = stop + sign * 10 * (misc % 3) if what == 8 else None
            cmd = PlaceOrder(next_id, user, side, otype, qty, limit, stop_price=stop, stp=stp,
                             ts=ts)
        elif what == 9:  # OCO: limit on the good side, stop on the bad side
            sign = 1 if buy else -1
            limit = 1000 - sign * 10 * (1 + misc % 6)
            stop = 1000 + sign * 10 * (1 + misc % 4)
            stop_limit = stop + sign * 10 if misc % 2 else None
            cmd = PlaceOrder(next_id, user, side, OrderType.OCO, qty, limit, stop_price=stop,
                             stop_limit_price=stop_limit, stp=stp, ts=ts)
        elif what == 10:
            trail = {"trail_amount": 10 * (1 + misc % 4)} if misc % 2 else {
                "trail_bps": 10 + 10 * misc}
            cmd = PlaceOrder(next_id, user, side, OrderType.TRAILING_STOP, qty, stp=stp, ts=ts,
                             **trail)  # type: ignore[arg-type]
        elif what in (11, 12) and placed:
            target = placed[-1 - misc % min(len(placed), 6)]  # mostly still open
            who = user if misc % 7 == 0 else owner[target] if misc % 2 else None
            if what == 11:
                cmd = CancelOrder(target, who, ts=ts)
            else:
                cmd = AmendOrder(target, 100 * max(1, steps // 3), user_id=who, ts=ts)
        elif what == 13 and misc % 3 == 0:  # the custody ledger says otherwise
            cmd = SetFunds(user, "TQ"[misc % 2], 100 * misc * steps, ts=ts)
        else:
            cmd = Tick(ts)
        if isinstance(cmd, PlaceOrder):
            placed.append(next_id)
            owner[next_id] = user
            next_id += 1
        cmds.append(cmd)
    return cmds


def check_ledger_now(engine: Engine, ledger: Ledger) -> None:
    assert all(v == 0 for v in ledger.asset_totals().values()), ledger.asset_totals()
    for account, value in ledger.balances().items():
        assert value >= 0 or account.owner == "@custody", (account, value)
    held: dict[tuple[int, str], int] = defaultdict(int)
    for view in engine.open_orders():
        held[(view.user_id, "Q" if view.side is Side.BUY else "T")] += view.hold
    for user in USERS:
        for asset in "TQ":
            assert ledger.held(user, asset) == held[(user, asset)], (user, asset)


def run(cmds: list[Command], *, with_ledger: bool = True) -> tuple[Engine, Ledger, list[Event]]:
    ledger = Ledger()
    engine = Engine(PAIR, ledger if with_ledger else None)
    if not with_ledger:
        cmds = [c for c in cmds if not isinstance(c, Deposit | SetFunds)]
    quantity: dict[int, int] = {}
    filled: dict[int, int] = defaultdict(int)
    log: list[Event] = []
    for cmd in cmds:
        events = engine.apply(cmd)
        log.extend(events)
        for ev in events:
            if isinstance(ev, OrderAccepted):
                quantity[ev.order_id] = ev.command.quantity
            elif isinstance(ev, Fill):
                assert ev.maker_user_id != ev.taker_user_id
                assert ev.quantity > 0 and ev.quote_amount * 1000 == ev.price * ev.quantity
                filled[ev.maker_order_id] += ev.quantity
                filled[ev.taker_order_id] += ev.quantity
        engine.check_invariants()  # not crossed at rest, caches agree
        for oid, qty in filled.items():
            assert qty <= quantity[oid]
        for view in engine.open_orders():
            assert view.filled == filled[view.order_id]
            assert view.filled + view.remaining <= view.quantity
        if with_ledger:
            check_ledger_now(engine, ledger)
    ledger.verify()
    return engine, ledger, log


SETTINGS = settings(
    derandomize=True, max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(streams)
def test_invariants_hold_after_every_command(raw: list[tuple[int, int, bool, int, int, int, int]]) -> None:  # noqa: E501
    run(build(raw))


@SETTINGS
@given(streams)
def test_invariants_hold_without_a_ledger(raw: list[tuple[int, int, bool, int, int, int, int]]) -> None:  # noqa: E501
    run(build(raw), with_ledger=False)


@SETTINGS
@given(streams, st.floats(0, 1))
def test_replay_rebuilds_the_same_book_and_ledger(
    raw: list[tuple[int, int, bool, int, int, int, int]], cut: float
) -> None:
    cmds = build(raw)
    engine, ledger, log = run(cmds)
    again = Engine.replay(PAIR, cmds, ledger=Ledger())
    assert again.snapshot() == engine.snapshot()
    assert again.depth() == engine.depth()
    assert again.ledger is not None and again.ledger.balances() == ledger.balances()
    assert Ledger.replay(ledger.entries).balances() == ledger.balances()
    # crash after recording a prefix of the events: recovery yields the rest, once
    k = int(len(log) * cut)
    recovered, missing = Engine.recover(PAIR, cmds, log[:k], ledger=Ledger())
    assert log[:k] + missing == log
    assert recovered.snapshot() == engine.snapshot()


@SETTINGS
@given(streams, st.floats(0, 1))
def test_folding_the_event_log_rebuilds_the_book_and_goes_on_the_same(
    raw: list[tuple[int, int, bool, int, int, int, int]], cut: float
) -> None:
    cmds = build(raw)
    engine, ledger, log = run(cmds)
    k = 8 + int((len(cmds) - 8) * cut)  # a crash after command k
    first = Engine(PAIR, Ledger())
    head = first.apply_all(cmds[:k])
    assert first.ledger is not None
    folded = Engine.from_events(PAIR, head, ledger=Ledger.replay(first.ledger.entries))
    assert folded.snapshot() == first.snapshot()
    tail = folded.apply_all(cmds[k:])
    assert head + tail == log
    assert folded.snapshot() == engine.snapshot()
    assert folded.ledger is not None and folded.ledger.balances() == ledger.balances()
    # and without a ledger
    plain = Engine(PAIR)
    plain_log = plain.apply_all([c for c in cmds if not isinstance(c, Deposit | SetFunds)])
    assert Engine.from_events(PAIR, plain_log).snapshot() == plain.snapshot()


@settings(derandomize=True, max_examples=30, deadline=None)
@given(streams)
def test_recover_refuses_a_log_that_differs(raw: list[tuple[int, int, bool, int, int, int, int]]) -> None:  # noqa: E501
    cmds = build(raw)
    _, _, log = run(cmds)
    fills = [i for i, ev in enumerate(log) if isinstance(ev, Fill)]
    if not fills:
        return
    i = fills[0]
    doubled = log[: i + 1] + [log[i]] + log[i + 1 :]  # a fill recorded twice
    with pytest.raises(ReplayMismatchError):
        Engine.recover(PAIR, cmds, doubled, ledger=Ledger())
    tampered = list(log)
    tampered[i] = log[i]._replace(quantity=log[i].quantity + 100)  # type: ignore[union-attr]
    with pytest.raises(ReplayMismatchError):
        Engine.recover(PAIR, cmds, tampered, ledger=Ledger())


def test_streams_reach_every_order_type_and_outcome() -> None:
    """The generator is not vacuous: a fixed long stream fills, triggers, expires,
    self-trade-prevents and rejects."""
    import random

    rng = random.Random(7)  # noqa: S311 - test data
    raw = [(rng.randint(0, 13), rng.randint(0, 3), rng.random() < 0.5, rng.randint(-6, 6),
            rng.randint(1, 30), rng.randint(0, 40), rng.randint(0, 4)) for _ in range(3000)]
    cmds = build(raw)
    engine, ledger, log = run(cmds)
    folded = Engine.from_events(PAIR, log, ledger=Ledger.replay(ledger.entries))
    assert folded.snapshot() == engine.snapshot()
    plain, _, plain_log = run(cmds, with_ledger=False)
    assert Engine.from_events(PAIR, plain_log).snapshot() == plain.snapshot()
    kinds = {type(ev).__name__ for ev in log}
    assert {"Fill", "FundsSet", "OrderTriggered", "OrderExpired", "OcoLegCancelled", "OrderReduced",
            "OrderRejected", "OrderCancelled", "OrderRested"} <= kinds
    reasons = {ev.reason for ev in log if type(ev).__name__ == "OrderCancelled"}  # type: ignore[union-attr]
    assert {"user", "self_trade", "ioc", "market_unfilled"} <= reasons
    codes = {ev.code for ev in log if type(ev).__name__ == "OrderRejected"}  # type: ignore[union-attr]
    assert {"insufficient_funds", "fok_not_fillable", "not_owner", "amend_not_reduce"} <= codes
