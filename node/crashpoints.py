"""Crash points: named places where a test may kill the node process.

``crashpoint("relay.signed")`` does nothing unless the process was started
with ``ESCROWD_OPS__CRASH_AT=relay.signed:3`` (the ``ops.crash_at`` setting):
then the third time the process passes that point it writes a marker line
(``ESCROWD_OPS__CRASH_MARKER``, a file path, if set) and kills itself with
SIGKILL, exactly like ``kill -9``: no ``finally`` blocks, no commit, no
flush. The crash tests use it to stop the node between two steps of one unit
of work (after a transaction is signed but before it is recorded, after a
block is read but before it is committed, ...) and check that a restart
neither loses nor repeats anything.

The hit counter is per process; the spec is read from the environment at the
first hit, so the cost when unarmed is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

ENV_AT = "ESCROWD_OPS__CRASH_AT"
ENV_MARKER = "ESCROWD_OPS__CRASH_MARKER"


@dataclass(frozen=True)
class CrashSpec:
    point: str
    hit: int


def parse_spec(value: str | None) -> CrashSpec | None:
    """``"name:n"`` (n >= 1) or ``"name"`` (n = 1); empty or None: unarmed.
    A malformed spec raises ValueError (a test typo must not pass silently)."""
    if not value:
        return None
    name, sep, n = value.rpartition(":")
    if not sep:
        return CrashSpec(value, 1)
    if not name or not n.isdigit() or int(n) < 1:
        raise ValueError(f"crash point spec must be NAME:N with N >= 1, got {value!r}")
    return CrashSpec(name, int(n))


class _Armed:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.spec: CrashSpec | None = None
        self.hits = 0


_state = _Armed()


def reset() -> None:
    """Forget the spec and the hit count (a forked child, unit tests)."""
    with _state.lock:
        _state.loaded = False
        _state.spec = None
        _state.hits = 0


def crashpoint(name: str) -> None:
    """Die here (SIGKILL to self) if this is the armed point's n-th hit."""
    st = _state
    if st.loaded and st.spec is None:
        return
    with st.lock:
        if not st.loaded:
            st.spec = parse_spec(os.environ.get(ENV_AT))
            st.loaded = True
        spec = st.spec
        if spec is None or spec.point != name:
            return
        st.hits += 1
        if st.hits != spec.hit:
            return
        marker = os.environ.get(ENV_MARKER)
        if marker:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, f"{name}:{spec.hit} pid={os.getpid()}\n".encode())
            os.fsync(fd)
            os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
