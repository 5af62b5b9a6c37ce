"""Server-Sent Events over the outbox.

Each stream polls the outbox for the user's events (the database is the
fan-out point, so any API process serves any client), writes them as SSE
frames with the outbox id as ``id:``, sends a keep-alive comment when idle,
and ends after a maximum duration; the client reconnects with
``Last-Event-ID`` and resumes after the last event it saw.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import orjson
from sqlalchemy.orm import Session, sessionmaker

from node.events.outbox import event_body, events_for_user


def frame(event_id: int, kind: str, body: dict[str, object]) -> bytes:
    """One SSE frame (``id``, ``event``, ``data`` lines, blank line)."""
    data = orjson.dumps(body).decode()
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def parse_last_event_id(value: str | None) -> int:
    """The ``Last-Event-ID`` header as an outbox id (0: from the beginning);
    anything that is not a small non-negative integer counts as 0."""
    if value is None:
        return 0
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        return 0
    return int(value)


def _fetch(
    sessions: sessionmaker[Session], user_id: int, after_id: int
) -> list[tuple[int, str, dict[str, object]]]:
    with sessions() as session:
        return [
            (e.seq or 0, e.kind, event_body(e))
            for e in events_for_user(session, user_id=user_id, after_id=after_id)
        ]


async def stream(
    sessions: sessionmaker[Session],
    *,
    user_id: int,
    after_id: int,
    poll_s: float,
    keepalive_s: float,
    max_duration_s: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The SSE body for one user: events after ``after_id`` as they appear."""
    yield f"retry: {int(poll_s * 1000) or 1000}\n\n".encode()
    started = last_sent = time.monotonic()
    last_id = after_id
    while True:
        rows = await anyio.to_thread.run_sync(_fetch, sessions, user_id, last_id)
        for event_id, kind, body in rows:
            yield frame(event_id, kind, body)
            last_id = event_id
        now = time.monotonic()
        if now - started >= max_duration_s or await disconnected():
            return
        if rows:
            last_sent = now
            continue  # drain a backlog before waiting
        if now - last_sent >= keepalive_s:
            yield b": keep-alive\n\n"
            last_sent = now
        await anyio.sleep(poll_s)
