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

from node.read_cache import decode_scopes, read_cache
from node.read_invalidation import CHANNEL as READS_CHANNEL

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
_listeners: dict[str, _Listener] = {}
POLL_S = 0.25


class _Listener:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self.run, name="db-changes", daemon=True)

    def run(self) -> None:
        import psycopg

        conninfo = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
        while not self.stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {READS_CHANNEL}")
                    # notifications sent while nobody listened are lost:
                    # whatever this process cached may predate them
                    read_cache.bump_all()
                    read_cache.resume(self.url)
                    self.connected.set()
                    while not self.stop.is_set():
                        for note in conn.notifies(timeout=POLL_S):
                            if note.channel == READS_CHANNEL:
                                read_cache.bump(decode_scopes(note.payload))
                            else:
                                hub.publish(int(x) for x in note.payload.split(",") if x)
                    return
            except psycopg.OperationalError as exc:
                if "does not exist" in str(exc):  # the database was dropped: done
                    read_cache.resume(self.url)
                    return
                self._lost(exc)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                self._lost(exc)
            self.stop.wait(1)

    def _lost(self, exc: BaseException) -> None:
        # other processes' commits go unheard until it is back: the read cache
        # answers nothing from memory meanwhile
        self.connected.clear()
        read_cache.pause(self.url)
        if not self.stop.is_set():
            log.warning("change listener: %r; reconnecting in 1 s", exc)


def start_listener(database_url: str) -> None:
    """Relay other processes' ``pg_notify`` to this process' hub and read
    cache (once per database, in a daemon thread that reconnects). No-op on
    SQLite, where one process holds the database."""
    if not database_url.startswith("postgresql"):
        return
    with _listener_lock:
        if database_url in _listeners and _listeners[database_url].thread.is_alive():
            return
        listener = _listeners[database_url] = _Listener(database_url)
    listener.thread.start()


def wait_listening(database_url: str, timeout: float = 10.0) -> bool:
    """True once the listener of this database is connected."""
    listener = _listeners.get(database_url)
    return listener is not None and listener.connected.wait(timeout)


def stop_listener(database_url: str, timeout: float = 5.0) -> None:
    """Stop this database's listener and close its connection (the node
    stopping; a database about to be copied or dropped)."""
    with _listener_lock:
        listener = _listeners.pop(database_url, None)
    if listener is not None:
        listener.stop.set()
        listener.thread.join(timeout)
        read_cache.resume(database_url)
