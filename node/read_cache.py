"""Hot reads served from memory, invalidated when the rows under them commit.

The order book and a trader's order list are read far more often than they
change. ``ReadCache`` holds finished response bodies keyed by request, each
stamped with the versions of the *scopes* it was built from:

- ``book``: the ads (any ad inserted, changed or deleted), and
  ``book:<currency>:<fiat>``: the ads of one currency in one fiat;
- ``mine``: every trader's list at once (an escrow, a price or a currency
  changed: rows we cannot attribute to one trader cheaply);
- ``user:<id>``: one trader's orders and trades;
- ``auth``: users and sign-in sessions (a sign-out, a revoked session, a new
  API token): who a cached bearer token is.

A write bumps the scopes it touched when its transaction commits, so a read
after the commit never gets an answer built before it. Writes are seen
generically, by SQLAlchemy session events (``track_writes``): every ORM flush
that touches the tables behind these views marks its scopes; a bulk
UPDATE/DELETE on them marks everything. On PostgreSQL the marks also go out by
``pg_notify`` in the same transaction (delivered at commit, dropped on
rollback) to the other processes of a fleet, whose change listener
(``node.changes``) bumps their caches; a listener that (re)connects bumps
everything, since it may have missed notifications. Every entry also expires
after ``ttl_s`` seconds, which bounds what a writer outside the ORM (raw SQL
by an operator) can leave stale.

The cache itself is plain data under a lock: no I/O.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

ALL = "*"
FRESH, STALE, MISS = "fresh", "stale", "miss"
BOOK = "book"
MINE = "mine"
AUTH = "auth"


def user_scope(user_id: int) -> str:
    return f"user:{user_id}"


def book_scope(currency_id: int, fiat: str) -> str:
    """The ads of one currency in one fiat (a book read filtered to them
    depends on these alone; any other book read depends on ``BOOK``)."""
    return f"book:{currency_id}:{fiat}"


@dataclass(frozen=True, slots=True)
class Entry:
    seen: tuple[int, ...]
    expires_at: float
    value: object


class ReadCache:
    """Values keyed by request, valid while the versions of their scopes
    are those they were built at, and for at most ``ttl_s`` seconds."""

    def __init__(self, *, ttl_s: float = 2.0, max_entries: int = 4096, jitter: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        # entries filled together (a cold start) expire spread over the last
        # ``jitter`` part of their lifetime, not all in the same instant
        self.jitter = jitter
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch = 0
        self._versions: dict[str, int] = {}
        self._entries: dict[Hashable, Entry] = {}
        self.hits = 0
        self.misses = 0
        self._paused: set[Hashable] = set()
        self._changes = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0 and self.max_entries > 0 and not self._paused

    def pause(self, who: Hashable) -> None:
        """Answer nothing from memory while ``who`` (a change listener that
        lost its connection) cannot hear other processes' commits."""
        with self._lock:
            self._paused.add(who)
            self._entries.clear()

    def resume(self, who: Hashable) -> None:
        with self._lock:
            self._paused.discard(who)

    def configure(self, *, ttl_s: float, max_entries: int) -> None:
        with self._lock:
            self.ttl_s = ttl_s
            self.max_entries = max_entries
            self._entries.clear()

    def versions(self, scopes: tuple[str, ...]) -> tuple[int, ...]:
        """The versions to hand back to ``put`` for a value about to be built
        (read them *before* reading the database)."""
        with self._lock:
            return self._seen(scopes)

    def _seen(self, scopes: tuple[str, ...]) -> tuple[int, ...]:
        v = self._versions
        return (self._epoch, *(v.get(s, 0) for s in scopes))

    def get(self, key: Hashable, scopes: tuple[str, ...]) -> object | None:
        """The value while it is valid (no scope changed, not expired)."""
        value, state = self.lookup(key, scopes)
        return value if state == FRESH else None

    def lookup(self, key: Hashable, scopes: tuple[str, ...]) -> tuple[object | None, str]:
        """``(value, FRESH)`` while valid; ``(value, STALE)`` for up to
        another ``ttl_s`` after it expired *with no scope changed* (for a
        caller that serves it while one other refreshes it); else
        ``(None, MISS)``. A value whose scope changed is never returned."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.seen == self._seen(scopes):
                now = self._clock()
                if entry.expires_at > now:
                    self.hits += 1
                    return entry.value, FRESH
                if entry.expires_at + self.ttl_s > now:
                    self.hits += 1
                    return entry.value, STALE
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None, MISS

    def put(self, key: Hashable, scopes: tuple[str, ...], seen: tuple[int, ...],
            value: object, *, ttl_s: float | None = None) -> bool:
        """Keep ``value`` (for ``ttl_s``, default the cache's) unless a scope
        changed since ``seen`` was read (then it may predate that change).
        True when kept."""
        if not self.enabled:
            return False
        with self._lock:
            if seen != self._seen(scopes):
                return False
            if key not in self._entries and len(self._entries) >= self.max_entries:
                # the oldest entry goes (dicts keep insertion order)
                del self._entries[next(iter(self._entries))]
            ttl = (self.ttl_s if ttl_s is None else ttl_s) * (1 - self.jitter * random.random())  # noqa: S311
            self._entries[key] = Entry(seen, self._clock() + ttl, value)
            return True

    @property
    def changes(self) -> int:
        """How many bumps this cache has seen (read before a build whose
        scopes are not known yet: see ``put_if_quiet``)."""
        return self._changes

    def put_if_quiet(self, key: Hashable, scopes: tuple[str, ...], since: int,
                     value: object) -> bool:
        """Keep ``value`` if nothing at all changed since ``changes`` was
        ``since`` (so every scope is at the version it had then)."""
        with self._lock:
            if self._changes != since:
                return False
            seen = self._seen(scopes)
        return self.put(key, scopes, seen, value)

    def bump(self, scopes: Iterable[str]) -> None:
        """These scopes changed (a commit, here or in another process)."""
        with self._lock:
            self._changes += 1
            for s in scopes:
                if s == ALL:
                    self._epoch += 1
                    self._entries.clear()
                else:
                    self._versions[s] = self._versions.get(s, 0) + 1

    def bump_all(self) -> None:
        self.bump((ALL,))

    def __len__(self) -> int:
        return len(self._entries)


def encode_scopes(scopes: Iterable[str], *, limit: int = 7000) -> str:
    """A ``pg_notify`` payload (PostgreSQL caps them near 8,000 bytes; past
    ``limit`` everything is invalidated instead)."""
    payload = ",".join(sorted(set(scopes)))
    return ALL if len(payload) > limit else payload


def decode_scopes(payload: str) -> list[str]:
    return [s for s in payload.split(",") if s]


# The process' cache: the API serves from it, every session's commits bump it.
read_cache = ReadCache()
