"""The trading service on real PostgreSQL: each command is one transaction that
appends to the input log, matches, writes fills and order states and moves the
money in the custody ledger; dropping the in-memory engine mid-stream and
rebuilding it from the database gives the identical book and goes on with no
lost or duplicated fill; a stored fill that differs from the log is refused;
a command that fails rolls back whole; a second service (another process) on
the same database catches up before it matches; GTD orders expire on the
job's clock tick."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from node.custody.ledger import FEES, balance, check_balances
from node.db.models_trading import TradingEngineLog, TradingFill, TradingOrder
from node.db.session import make_sessionmaker, transaction
from node.errors import NotFoundError
from node.orderbook import (
    Engine,
    Fill,
    OrderType,
    OrderValidationError,
    ReplayMismatchError,
    Side,
    TimeInForce,
)
from node.trading.codec import decode
from node.trading.errors import OrderNotOpenError, OrderRejectedError
from node.trading.service import TradingService
from tests.api.trading_fixtures import (
    BTC,
    available,
    held,
    make_market,
    order_stream,
    req,
    usd,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


def service(sessions: sessionmaker[Session]) -> TradingService:
    return TradingService(sessions, clock=Clock())


def test_a_fill_moves_the_money_in_the_custody_ledger(sessions: sessionmaker[Session]) -> None:
    m = make_market(sessions)
    svc = service(sessions)
    alice, bob = m.users["alice"], m.users["bob"]
    price = usd(65_000)
    sell = svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC // 2, price))
    assert sell.status == "open" and sell.held == BTC // 2
    buy = svc.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 5, price))
    assert buy.status == "filled" and buy.executed_quantity == BTC // 5
    quote = usd(13_000)
    maker_fee = quote * 10 // 10_000  # the seller (maker) pays 10 bps of the USDT it gets
    taker_fee = BTC // 5 * 20 // 10_000  # the buyer (taker) pays 20 bps of the BTC it gets
    with sessions() as s:
        (fill,) = s.scalars(select(TradingFill)).all()
        assert (fill.price, fill.quantity, fill.quote_amount) == (price, BTC // 5, quote)
        assert (fill.maker_fee, fill.taker_fee) == (maker_fee, taker_fee)
        assert s.get(TradingOrder, sell.id).status == "partially_filled"  # type: ignore[union-attr]
        assert held(s, alice, "BTC") == BTC // 2 - BTC // 5
        assert available(s, alice, "BTC") == 10 * BTC - BTC // 2
        assert available(s, alice, "USDT") == usd(1_000_000) + quote - maker_fee
        assert available(s, bob, "BTC") == 10 * BTC + BTC // 5 - taker_fee
        assert available(s, bob, "USDT") == usd(1_000_000) - quote
        assert held(s, bob, "USDT") == 0
        assert balance(s, FEES, "USDT") == maker_fee and balance(s, FEES, "BTC") == taker_fee
        assert check_balances(s) == []
    svc.cancel(alice, sell.id)
    with sessions() as s:
        assert held(s, alice, "BTC") == 0
        assert s.get(TradingOrder, sell.id).status == "cancelled"  # type: ignore[union-attr]


def test_bad_input_and_refusals(sessions: sessionmaker[Session]) -> None:
    m = make_market(sessions, ("alice", "poor"), fund=False)
    svc = service(sessions)
    alice = m.users["alice"]
    with pytest.raises(OrderValidationError) as bad:
        svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000) + 1))
    assert bad.value.code == "price_not_on_tick"
    with pytest.raises(OrderValidationError) as bad:
        svc.place(alice, req(m.pair_id, SELL, LIMIT, 12_345, usd(65_000)))
    assert bad.value.code == "quantity_not_on_step"
    with sessions() as s:  # nothing was logged or stored for bad input
        assert s.scalar(select(func.count()).select_from(TradingEngineLog)) == 0
        assert s.scalar(select(func.count()).select_from(TradingOrder)) == 0
    with pytest.raises(OrderRejectedError) as refused:
        svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    assert refused.value.code == "insufficient_funds" and refused.value.http_status == 409
    with sessions() as s:
        row = s.get(TradingOrder, refused.value.fields["order_id"])
        assert row is not None and row.status == "rejected" and row.reason == "insufficient_funds"
    with pytest.raises(OrderNotOpenError):
        svc.cancel(alice, refused.value.fields["order_id"])


def _drive(svc: TradingService, sessions: sessionmaker[Session],
           stream: list[tuple[str, int, object]], on_step: Callable[[int], None]) -> None:
    for i, (kind, user, what) in enumerate(stream):
        on_step(i)
        try:
            if kind == "place":
                svc.place(user, what)  # type: ignore[arg-type]
            else:
                with sessions() as s:
                    oid = s.scalar(select(TradingOrder.id).where(
                        TradingOrder.client_order_id == f"c{what}"))
                if oid is not None:
                    svc.cancel(None, oid)
        except (OrderRejectedError, OrderValidationError, OrderNotOpenError):
            pass


def _fills(s: Session) -> list[tuple[object, ...]]:
    rows = s.scalars(select(TradingFill).order_by(TradingFill.trade_id)).all()
    return [(f.trade_id, f.maker_order_id, f.taker_order_id, f.price, f.quantity,
             f.quote_amount, f.maker_fee, f.taker_fee) for f in rows]


def test_dropping_the_engine_mid_stream_rebuilds_it_from_the_database(
    sessions: sessionmaker[Session],
) -> None:
    m = make_market(sessions)
    svc = service(sessions)
    stream = order_stream(m.pair_id, list(m.users.values()), 110, seed=11)
    snapshots: list[object] = []

    def crash_now_and_then(i: int) -> None:
        if i in (40, 75, 105):
            before = svc._books[m.pair_id].engine.snapshot()
            svc.drop()  # the process "dies": all in-memory state is gone
            book = svc.rebuild(m.pair_id)  # recovery checks the log against the fills
            assert book.engine.snapshot() == before
            snapshots.append(before)

    _drive(svc, sessions, stream, crash_now_and_then)
    assert len(snapshots) == 3
    with sessions() as s:
        fills = _fills(s)
        # the log alone, replayed by a bare engine, gives exactly the stored fills
        spec = svc._books[m.pair_id].spec
        rows = s.execute(select(TradingEngineLog.kind, TradingEngineLog.command)
                         .order_by(TradingEngineLog.seq)).all()
        from node.orderbook import Ledger

        replayed = Engine(spec, Ledger()).apply_all([decode(k, c) for k, c in rows])
        assert [(f.trade_id, f.maker_order_id, f.taker_order_id, f.price, f.quantity,
                 f.quote_amount, f.maker_fee, f.taker_fee)
                for f in replayed if isinstance(f, Fill)] == fills
        assert len(fills) > 10  # the stream really trades
        kinds = {r.order_type for r in s.scalars(select(TradingOrder)) if r.status == "filled"}
        assert {"limit", "market"} <= kinds
        assert check_balances(s) == []
        # what the custody ledger holds for each user is what their open orders hold
        book = svc._books[m.pair_id]
        for user in m.users.values():
            for asset in ("BTC", "USDT"):
                assert held(s, user, asset) == book.ledger.held(user, asset)
                assert held(s, user, asset) == sum(
                    r.held for r in s.scalars(select(TradingOrder).where(
                        TradingOrder.user_id == user, TradingOrder.fee_currency != asset)))


def test_a_stored_fill_that_differs_from_the_log_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    m = make_market(sessions)
    svc = service(sessions)
    alice, bob = m.users["alice"], m.users["bob"]
    svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    svc.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 2, usd(65_000)))
    with transaction(sessions) as s:
        s.execute(update(TradingFill).values(quantity=BTC // 4))
    with pytest.raises(ReplayMismatchError):
        svc.rebuild(m.pair_id)
    with transaction(sessions) as s:
        s.execute(update(TradingFill).values(quantity=BTC // 2))
        fill = s.scalars(select(TradingFill)).one()
        s.add(TradingFill(**{c: getattr(fill, c) for c in (
            "trading_pair_id", "seq", "maker_order_id", "taker_order_id", "maker_user_id",
            "taker_user_id", "taker_side", "price", "quantity", "quote_amount", "maker_fee",
            "taker_fee", "ts")}, trade_id=2))  # the same fill, recorded twice
    with pytest.raises(ReplayMismatchError):
        svc.rebuild(m.pair_id)


def test_a_failed_command_rolls_back_whole(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = make_market(sessions)
    svc = service(sessions)
    alice, bob = m.users["alice"], m.users["bob"]
    svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    import node.trading.service as mod

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(mod, "post_ledger", boom)
    with pytest.raises(RuntimeError):
        svc.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 2, usd(65_000)))
    monkeypatch.undo()
    assert m.pair_id not in svc._books  # the engine that ran ahead was dropped
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(TradingFill)) == 0
        assert s.scalar(select(func.count()).select_from(TradingEngineLog)) == 2  # funds, place
    again = svc.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 2, usd(65_000)))
    assert again.status == "filled"
    with sessions() as s:
        assert len(_fills(s)) == 1 and check_balances(s) == []


def test_two_processes_share_one_sequence(sessions: sessionmaker[Session]) -> None:
    m = make_market(sessions)
    one = service(sessions)
    other = service(make_sessionmaker(sessions.kw["bind"]))  # its own engine, same database
    alice, bob = m.users["alice"], m.users["bob"]
    sell = one.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    buy = other.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 4, usd(65_000)))
    assert buy.status == "filled"  # the other process caught up with the resting sell first
    bids, asks, last, seq = one.depth(m.pair_id, 10)
    assert asks == [(usd(65_000), BTC - BTC // 4)] and bids == [] and last == usd(65_000)
    assert seq == other._books[m.pair_id].seq
    one.cancel(alice, sell.id)
    with pytest.raises(OrderNotOpenError):
        other.cancel(alice, sell.id)


def test_gtd_orders_expire_on_the_jobs_tick(sessions: sessionmaker[Session]) -> None:
    m = make_market(sessions)
    clock = Clock()
    svc = TradingService(sessions, clock=clock)
    alice = m.users["alice"]
    order = svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000),
                                 time_in_force=TimeInForce.GTD, expires_at=clock.now + 5_000))
    svc.expire_due()
    with sessions() as s:
        assert s.get(TradingOrder, order.id).status == "open"  # type: ignore[union-attr]
    clock.now += 10_000
    svc.expire_due()
    with sessions() as s:
        row = s.get(TradingOrder, order.id)
        assert row is not None and row.status == "expired" and row.held == 0
        assert held(s, alice, "BTC") == 0
    with pytest.raises(OrderValidationError) as bad:
        svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000),
                             time_in_force=TimeInForce.GTD, expires_at=clock.now - 1))
    assert bad.value.code == "expiry_in_past"


def test_the_embedded_sqlite_database_works_the_same(tmp_path: Path) -> None:
    from node.db.migrate import upgrade
    from node.db.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'escrowd.sqlite'}")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    m = make_market(sessions)
    svc = service(sessions)
    alice, bob = m.users["alice"], m.users["bob"]
    svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    buy = svc.place(bob, req(m.pair_id, BUY, MARKET, BTC // 2))
    assert buy.status == "filled"
    svc.drop()
    book = svc.rebuild(m.pair_id)
    assert book.engine.depth() == ([], [(usd(65_000), BTC // 2)])
    with sessions() as s:
        assert check_balances(s) == []
        assert held(s, bob, "USDT") == 0 and held(s, alice, "BTC") == BTC // 2
    engine.dispose()


def test_install_seeds_the_dev_pairs_and_recovers_them_on_restart(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from node.chain_trades import ChainRegistry
    from node.config import load_settings
    from node.runtime import Node
    from node.trades import CurrencySpec, upsert_currency
    from node.trading import service as trading

    m = make_market(sessions, ("alice",))  # BTC and USDT exist
    with transaction(sessions) as s:
        upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "31337", 18))
    settings = load_settings(mode="dev", data_dir=tmp_path)

    def start() -> Node:
        node = Node(settings=settings, engine=sessions.kw["bind"], sessions=sessions,
                    chains=ChainRegistry())
        trading.install(node)
        return node

    node = start()
    assert [job[0] for job in node.jobs] == ["trading-expire-gtd"]
    with sessions() as s:
        from node.db.models_trading import TradingPair

        assert sorted(s.scalars(select(TradingPair.pair_name))) == ["BTC/USDT", "ETH/USDT"]
    svc = trading.service_for(sessions)
    svc.place(m.users["alice"], req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    svc.drop()  # the process ends
    start()  # and starts again: every pair's engine recovered from the log at install
    assert svc._books[m.pair_id].engine.depth()[1] == [(usd(65_000), BTC)]


def test_amend_lowers_the_quantity_and_frees_the_hold(sessions: sessionmaker[Session]) -> None:
    m = make_market(sessions)
    svc = service(sessions)
    alice, bob = m.users["alice"], m.users["bob"]
    first = svc.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    svc.place(bob, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))
    amended = svc.amend(alice, first.id, BTC // 4)
    assert amended.quantity == BTC // 4 and amended.held == BTC // 4
    for bad, code in ((BTC // 2, "amend_not_reduce"), (BTC // 8 + 1, "quantity_not_on_step")):
        with pytest.raises(OrderValidationError) as refused:
            svc.amend(alice, first.id, bad)
        assert refused.value.code == code
    with pytest.raises(NotFoundError):
        svc.amend(bob, first.id, BTC // 8)
    with sessions() as s:
        assert held(s, alice, "BTC") == BTC // 4
    # it kept its place: the next buyer takes alice's quarter first
    svc.place(m.users["carol"], req(m.pair_id, BUY, LIMIT, BTC // 4, usd(65_000)))
    with sessions() as s:
        assert s.get(TradingOrder, first.id).status == "filled"  # type: ignore[union-attr]
        assert held(s, alice, "BTC") == 0 and held(s, bob, "BTC") == BTC
        assert check_balances(s) == []


def test_the_stream_of_one_process_catches_up_with_anothers_commands(
    sessions: sessionmaker[Session],
) -> None:
    import asyncio

    m = make_market(sessions)
    writer = service(sessions)
    reader = service(make_sessionmaker(sessions.kw["bind"]))  # the process serving the stream
    alice, bob = m.users["alice"], m.users["bob"]
    writer.place(alice, req(m.pair_id, SELL, LIMIT, BTC, usd(65_000)))

    async def listen() -> list[dict[str, object]]:
        with reader.hub.subscribe(m.pair_id) as sub:
            snap = reader.stream_snapshot(m.pair_id)
            assert snap["asks"] == [[str(usd(65_000)), str(BTC)]]
            writer.place(bob, req(m.pair_id, BUY, LIMIT, BTC // 4, usd(65_000)))
            assert sub.queue.empty()  # the reader's process did not see it yet
            reader.poll(m.pair_id)  # what the stream does when idle
            return [await asyncio.wait_for(sub.queue.get(), 5) for _ in range(2)]

    trade, book = asyncio.run(listen())
    assert trade["type"] == "trade" and trade["quantity"] == str(BTC // 4)
    assert book["type"] == "book" and book["asks"] == [[str(usd(65_000)), str(BTC - BTC // 4)]]
    assert book["seq"] == trade["seq"] == reader._books[m.pair_id].seq


def test_recovery_starts_from_the_newest_snapshot(sessions: sessionmaker[Session]) -> None:
    from node.db.models_trading import TradingEngineSnapshot
    from node.trading.settings import TradingSettings

    m = make_market(sessions)
    svc = TradingService(sessions, TradingSettings(snapshot_every=10), clock=Clock())
    stream = order_stream(m.pair_id, list(m.users.values()), 50, seed=3)
    _drive(svc, sessions, stream, lambda _i: None)
    before = svc._books[m.pair_id].engine.snapshot()
    with sessions() as s:
        snaps = list(s.scalars(select(TradingEngineSnapshot.seq)
                               .order_by(TradingEngineSnapshot.seq)))
        fills = s.scalar(select(func.count()).select_from(TradingFill)) or 0
    # one snapshot each time the log passes a multiple of 10
    assert len(snaps) >= 4 and all(b // 10 == a // 10 + 1 for a, b in itertools.pairwise(snaps))
    svc.drop()
    book = svc.rebuild(m.pair_id)
    assert book.restored_from == snaps[-1] and book.engine.snapshot() == before
    assert svc.rebuild(m.pair_id, use_snapshot=False).engine.snapshot() == before
    assert fills >= 3
    # a fill lost before the snapshot is noticed too (the log after it cannot show it)
    with transaction(sessions) as s:
        first = s.scalars(select(TradingFill).order_by(TradingFill.trade_id)).first()
        assert first is not None and first.seq <= snaps[-1]
        s.delete(first)
    with pytest.raises(ReplayMismatchError):
        svc.rebuild(m.pair_id)
