"""Trade-change notifications: a client waiting on a trade hears of its change
the moment the transaction that made it commits.

Whoever changes trade statuses in a transaction calls ``note_trades_changed``.
At commit the ids are published to this process' ``hub``; on PostgreSQL a
``pg_notify`` in the same transaction tells every other process (API
processes of a fleet listen with ``start_listener``). Nothing is published for
a transaction that rolls back. A waiter that misses a notification (another
writer that does not call ``note_trades_changed``) still re-reads when its
wait times out, so notifications only ever make answers earlier.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from sqlalchemy import event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "escrowd_trades"
_KEY = "escrowd.changed_trades"


class ChangeHub:
    """Per-process fan-out of "trade N changed" to the threads waiting on N."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[int, int] = {}
        self._waiting: dict[int, int] = {}

    def version(self, trade_id: int) -> int:
        with self._cond:
            return self._versions.get(trade_id, 0)

    def publish(self, trade_ids: Iterable[int]) -> None:
        with self._cond:
            hit = False
            for tid in trade_ids:
                if tid in self._waiting:
                    self._versions[tid] = self._versions.get(tid, 0) + 1
                    hit = True
            if hit:
                self._cond.notify_all()

    def wait(self, trade_id: int, seen: int, timeout: float) -> bool:
        """Block until trade ``trade_id`` (``watch``-ed) changes after version
        ``seen``, or ``timeout`` seconds pass. True when it changed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._versions.get(trade_id, 0) != seen, timeout)

    def watch(self, trade_id: int) -> int:
        """Register interest before reading (so a change between the read and
        ``wait`` is not lost); returns the version to pass to ``wait``."""
        with self._cond:
            self._waiting[trade_id] = self._waiting.get(trade_id, 0) + 1
            return self._versions.get(trade_id, 0)

    def unwatch(self, trade_id: int) -> None:
        with self._cond:
            left = self._waiting.get(trade_id, 0) - 1
            if left > 0:
                self._waiting[trade_id] = left
            else:
                self._waiting.pop(trade_id, None)
                self._versions.pop(trade_id, None)


hub = ChangeHub()


def note_trades_changed(session: Session, trade_ids: Iterable[int]) -> None:
    """Record that this transaction changed these trades (published at commit)."""
    ids = {int(t) for t in trade_ids}
    if not ids:
        return
    session.info.setdefault(_KEY, set()).update(ids)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": ",".join(map(str, sorted(ids)))},
        )


@event.listens_for(Session, "after_commit")
def _publish_on_commit(session: Session) -> None:
    ids = session.info.pop(_KEY, None)
    if ids:
        hub.publish(ids)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous_transaction: object) -> None:  # noqa: ARG001
    session.info.pop(_KEY, None)


_listener_lock = threading.Lock()
_listening: set[str] = set()


def start_listener(database_url: str) -> None:
    """Relay other processes' ``pg_notify`` to this process' hub (once per
    database, in a daemon thread that reconnects). No-op on SQLite, where one
    process holds the database."""
    if not database_url.startswith("postgresql"):
        return
    with _listener_lock:
        if database_url in _listening:
            return
        _listening.add(database_url)
    threading.Thread(
        target=_listen, args=(database_url,), name="trade-changes", daemon=True
    ).start()


def _listen(database_url: str) -> None:
    import time

    import psycopg

    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    while True:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                for note in conn.notifies():
                    hub.publish(int(x) for x in note.payload.split(",") if x)
        except psycopg.OperationalError as exc:
            if "does not exist" in str(exc):  # the database was dropped: done
                with _listener_lock:
                    _listening.discard(database_url)
                return
            log.warning("trade-change listener: %r; reconnecting in 1 s", exc)
        except Exception as exc:  # noqa: BLE001 - any failure: reconnect
            log.warning("trade-change listener: %r; reconnecting in 1 s", exc)
        time.sleep(1)
