"""Leadership: one active holder of a role (e.g. the watcher of one chain)
among any number of node processes on one PostgreSQL.

A session-level advisory lock held on a dedicated connection: it is released
by PostgreSQL when the holder's connection ends, so a crashed leader's role is
taken over by another process within one retry interval, with no home-made
heartbeat. On SQLite (the embedded default: one process) the holder is always
the leader.

Leadership saves work; it is not what keeps the data right: every writer also
locks the rows it changes (the watcher's cursor, relay jobs), so two holders
for a moment (a network partition) cannot corrupt anything.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from node.ops.metrics import LEADER

log = logging.getLogger("escrowd.leadership")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks take a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leadership:
    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(f"escrowd:{name}")
        self._conn: Any = None

    @property
    def shared(self) -> bool:
        """Whether other processes can compete (PostgreSQL) or not (SQLite)."""
        return self.engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        if not self.shared:
            return True
        if self._conn is None:
            self._conn = self.engine.connect()
        got = bool(
            self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        )
        self._conn.commit()
        if not got:
            self._conn.close()
            self._conn = None
        return got

    def still_held(self) -> bool:
        """False once the lock's connection is gone (and with it the lock)."""
        if not self.shared:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001 - any failure means the session is gone
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


def run_as_leader(
    leadership: Leadership,
    target: Callable[[threading.Event], None],
    stop: threading.Event,
    *,
    retry_s: float = 1.0,
) -> None:
    """Wait for leadership, then run ``target`` until ``stop``; if leadership
    is lost (the lock's connection died), stop the target and compete again."""
    while not stop.is_set():
        if not leadership.try_acquire():
            stop.wait(retry_s)
            continue
        log.info("leader for %s", leadership.name)
        LEADER.labels(leadership.name).set(1)
        lost = threading.Event()
        inner_stop = threading.Event()
        guard = threading.Thread(
            target=_guard,
            args=(leadership, stop, inner_stop, lost, retry_s),
            name=f"lead-{leadership.name}",
            daemon=True,
        )
        guard.start()
        try:
            target(inner_stop)
        finally:
            inner_stop.set()
            guard.join(timeout=retry_s * 2)
            LEADER.labels(leadership.name).set(0)
            if not lost.is_set():
                leadership.release()
                log.info("released leadership of %s", leadership.name)
        if not lost.is_set():
            return


def _guard(
    leadership: Leadership,
    stop: threading.Event,
    inner_stop: threading.Event,
    lost: threading.Event,
    retry_s: float,
) -> None:
    """Stop the leader's work when the node stops or the lock is lost."""
    while not stop.is_set() and not inner_stop.is_set():
        if not leadership.still_held():
            log.warning("lost leadership of %s", leadership.name)
            lost.set()
            break
        stop.wait(retry_s)
    inner_stop.set()
