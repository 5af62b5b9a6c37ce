"""Logging: text for terminals, JSON lines (python-json-logger) for
collectors, with the trade being worked on in every record.

``log_context(trade_id=..., escrow_key=...)`` sets context variables that a
filter copies into each record logged inside it (the API middleware sets the
trade id from the request path, the relayer the escrow of the job), so a log
collector can follow one trade across API, watcher and relayer processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("trade_id", "escrow_key", "job_id", "role")
_vars: dict[str, ContextVar[Any]] = {
    f: ContextVar(f"escrowd_{f}", default=None) for f in CONTEXT_FIELDS
}

NOISY = ("httpx", "apscheduler", "web3", "urllib3", "alembic")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside carry ``fields`` (names from CONTEXT_FIELDS)."""
    tokens = []
    for name, value in fields.items():
        tokens.append((_vars[name], _vars[name].set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_context(**fields: Any) -> None:
    """Set context fields for the rest of this thread/task (e.g. the role)."""
    for name, value in fields.items():
        _vars[name].set(value)


def current_context() -> dict[str, Any]:
    return {n: v.get() for n, v in _vars.items() if v.get() is not None}


class ContextFilter(logging.Filter):
    """Copies the context fields (None when unset) and the pid into records."""

    def __init__(self, role: str | None = None) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _vars.items():
            value = var.get()
            if name == "role" and value is None:
                value = self.role
            setattr(record, name, value)
        record.pid = os.getpid()
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(pid)s %(role)s "
        "%(trade_id)s %(escrow_key)s %(job_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def setup_logging(level: str, fmt: str, *, role: str | None = None) -> None:
    """Configure the root logger once: ``fmt`` is ``text`` or ``json``."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter(role))
    if fmt == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
