"""Market-data fan-out: the service publishes each pair's book deltas and trades
after the transaction that made them commits; each WebSocket subscriber has an
asyncio queue fed thread-safely from whatever thread published.

A slow subscriber never blocks matching: its queue is bounded, and when it is
full the subscriber is marked ``lagged`` (the route then closes it; the client
reconnects and gets a fresh snapshot)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass
class Subscriber:
    pair_id: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Message]
    lagged: bool = False

    def _offer(self, message: Message) -> None:  # runs on the subscriber's loop
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.lagged = True


@dataclass
class Hub:
    max_queue: int = 1000
    _subs: dict[int, list[Subscriber]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def subscribe(self, pair_id: int) -> Iterator[Subscriber]:
        """Call on the subscriber's event loop; messages arrive on its queue."""
        sub = Subscriber(pair_id, asyncio.get_running_loop(), asyncio.Queue(self.max_queue))
        with self._lock:
            self._subs.setdefault(pair_id, []).append(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs[pair_id].remove(sub)

    def has_subscribers(self, pair_id: int) -> bool:
        with self._lock:
            return bool(self._subs.get(pair_id))

    def publish(self, pair_id: int, messages: list[Message]) -> None:
        """Hand ``messages`` to every subscriber of the pair (from any thread)."""
        if not messages:
            return
        with self._lock:
            subs = list(self._subs.get(pair_id, ()))
        for sub in subs:
            for message in messages:
                try:
                    sub.loop.call_soon_threadsafe(sub._offer, message)
                except RuntimeError:  # its loop has closed: it is leaving
                    break
