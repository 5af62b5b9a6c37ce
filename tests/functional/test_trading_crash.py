"""kill -9 of a process applying trading commands, at random points, then a
restart that resumes where it stopped: the fills, the orders and every custody
balance end exactly as in a run that never crashed (no lost and no duplicated
fill), the custody ledger balances, and recovery from the log succeeds.

The driver (this file run as a script) applies a fixed stream of requests
with a clock that depends only on the request; on restart it resumes after the
last request that left a trace (an order row or a logged cancel): the requests
after it left none, so they run again from the same state."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parents[2]
N = 60
SEED = 5


def drive(url: str) -> None:
    """Apply the stream to the database at ``url``, resuming after a crash."""
    from node.db.models import User
    from node.db.models_trading import TradingEngineLog, TradingOrder, TradingPair
    from node.db.session import make_engine, make_sessionmaker
    from node.orderbook import OrderValidationError
    from node.trading.errors import OrderNotOpenError, OrderRejectedError
    from node.trading.service import TradingService
    from node.trading.settings import TradingSettings
    from tests.api.trading_fixtures import order_stream

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        pair_id = s.scalars(select(TradingPair.id)).one()
        users = list(s.scalars(select(User.id).order_by(User.id)))
        refs = list(s.scalars(select(TradingOrder.client_order_id)))
        refs += s.scalars(
            select(TradingEngineLog.client_ref).where(TradingEngineLog.client_ref.like("x%")))
        traces = [int(ref[1:]) for ref in refs if ref is not None]
    start = max(traces, default=-1) + 1
    now = [0]
    # snapshots every 7 commands: a restart recovers from one and the log after it
    svc = TradingService(sessions, TradingSettings(snapshot_every=7), clock=lambda: now[0])
    for i, (kind, _user, what) in enumerate(order_stream(pair_id, users, N, SEED)):
        if i < start:
            continue
        now[0] = 1_700_000_000_000 + 1000 * i
        try:
            if kind == "place":
                svc.place(_user, what)  # type: ignore[arg-type]
            else:
                with sessions() as s:
                    oid = s.scalar(select(TradingOrder.id).where(
                        TradingOrder.client_order_id == f"c{what}"))
                if oid is not None:
                    svc.cancel(None, oid, client_ref=f"x{i}")
        except (OrderRejectedError, OrderValidationError, OrderNotOpenError):
            pass
        print(i, flush=True)
    engine.dispose()
    print("done", flush=True)


def _run(url: str, kill_after: int | None) -> bool:
    """Run the driver; kill -9 it after ``kill_after`` progress lines. True if it finished."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and file
        [sys.executable, __file__, url], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    lines = 0
    for line in proc.stdout:
        if line.strip() == "done":
            proc.wait(timeout=60)
            return True
        lines += 1
        if kill_after is not None and lines >= kill_after:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return False
    assert proc.wait(timeout=60) == 0, "the driver failed"
    return False


Outcome = tuple[list[object], list[object], list[object], int]


def _outcome(sessions: sessionmaker[Session]) -> Outcome:
    from node.custody.ledger import check_balances
    from node.db.models_custody import CustodyBalance
    from node.db.models_trading import TradingEngineLog, TradingFill, TradingOrder

    with sessions() as s:
        coid = dict(s.execute(select(TradingOrder.id, TradingOrder.client_order_id)).all())
        fills = [
            (f.trade_id, f.seq, coid[f.maker_order_id], coid[f.taker_order_id], f.maker_user_id,
             f.taker_user_id, f.taker_side, f.price, f.quantity, f.quote_amount, f.maker_fee,
             f.taker_fee, f.ts)
            for f in s.scalars(select(TradingFill).order_by(TradingFill.trade_id))
        ]
        orders = sorted(
            (o.client_order_id, o.status, o.quantity, o.executed_quantity, o.executed_quote,
             o.fee, o.held, o.reason)
            for o in s.scalars(select(TradingOrder))
        )
        balances = sorted(
            (b.account, b.asset, b.balance) for b in s.scalars(select(CustodyBalance))
        )
        log_rows = s.scalar(select(func.count()).select_from(TradingEngineLog)) or 0
        assert check_balances(s) == []
    return list(fills), list(orders), list(balances), log_rows


@pytest.fixture
def second_db(pg_server: str, pg_template: str) -> Iterator[str]:
    from tests import pg

    name = f"escrowd_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(pg_server, name, template=pg_template)
    yield url
    pg.drop_database(pg_server, name)


def test_kill_9_at_random_points_loses_and_duplicates_no_fill(
    pg_url: str, second_db: str, sessions: sessionmaker[Session]
) -> None:
    from node.db.session import make_engine, make_sessionmaker
    from node.trading.service import TradingService
    from tests.api.trading_fixtures import make_market

    crashed = make_sessionmaker(make_engine(second_db))
    markets = [make_market(sessions), make_market(crashed)]
    assert markets[0] == markets[1]  # same ids: the two runs are comparable

    drive(pg_url)  # the reference run, never killed (in this process: the same code)
    rng = random.Random()  # noqa: S311 - where to kill is random on purpose
    kills = 0
    for _ in range(2):
        if _run(second_db, rng.randint(3, 20)):
            break
        kills += 1
    while not _run(second_db, None):
        pass
    assert kills >= 1
    expected, got = _outcome(sessions), _outcome(crashed)
    assert len(expected[0]) > 5  # the stream really trades
    assert got == expected
    book = TradingService(crashed).rebuild(markets[1].pair_id)  # recovery checks the log
    assert book.seq == expected[3] and book.restored_from > 0  # from a snapshot
    full = TradingService(crashed).rebuild(markets[1].pair_id, use_snapshot=False)
    assert full.engine.snapshot() == book.engine.snapshot()
    crashed.kw["bind"].dispose()


if __name__ == "__main__":
    drive(sys.argv[1])
