"""Leadership on real PostgreSQL: one holder of a role at a time across
connections (as across node processes), handed over when the holder stops or
its connection dies (a crashed process), and always held on SQLite."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from node.db.session import make_engine
from node.leadership import Leadership, run_as_leader


def test_one_holder_then_handover(engine: Engine) -> None:
    a, b = Leadership(engine, "watch:evm:1"), Leadership(engine, "watch:evm:1")
    other = Leadership(engine, "watch:evm:5")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert other.try_acquire()  # another chain is another role
    a.release()
    assert b.try_acquire()
    b.release()
    other.release()


def test_a_dead_holder_loses_the_role(engine: Engine) -> None:
    a, b = Leadership(engine, "watch:evm:1"), Leadership(engine, "watch:evm:1")
    assert a.try_acquire()
    pid = a._conn.execute(text("SELECT pg_backend_pid()")).scalar()  # noqa: SLF001
    a._conn.commit()  # noqa: SLF001
    with engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.commit()
    assert not a.still_held()
    assert b.try_acquire()
    b.release()


def test_run_as_leader_runs_one_target_at_a_time(engine: Engine) -> None:
    active: list[str] = []
    max_active = 0
    lock = threading.Lock()

    def work(name: str):  # type: ignore[no-untyped-def]
        def target(stop: threading.Event) -> None:
            nonlocal max_active
            with lock:
                active.append(name)
                max_active = max(max_active, len(active))
            stop.wait()
            with lock:
                active.remove(name)

        return target

    stops = {n: threading.Event() for n in ("p1", "p2")}
    threads = {
        n: threading.Thread(
            target=run_as_leader,
            args=(Leadership(engine, "watch:evm:9"), work(n), stops[n]),
            kwargs={"retry_s": 0.05},
        )
        for n in stops
    }
    for t in threads.values():
        t.start()
    deadline = time.monotonic() + 5
    while not active and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(active) == 1
    leader = active[0]
    stops[leader].set()  # the leader's process stops
    threads[leader].join(5)
    follower = "p2" if leader == "p1" else "p1"
    deadline = time.monotonic() + 5
    while active != [follower] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert active == [follower]
    stops[follower].set()
    threads[follower].join(5)
    assert max_active == 1


def test_sqlite_is_always_leader(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    a, b = Leadership(eng, "watch:evm:1"), Leadership(eng, "watch:evm:1")
    assert a.try_acquire() and b.try_acquire() and a.still_held()
