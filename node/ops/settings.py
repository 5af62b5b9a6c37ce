"""Settings of this slice: the ``[ops]`` block of escrowd.toml, ESCROWD_OPS__* variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from node.settings_base import Section


class OpsSettings(Section):
    # "text" for people at a terminal, "json" (one object per line, with
    # trade ids) for log collectors; `--log-format` overrides.
    log_format: Literal["text", "json"] = "text"
    # Roles without an API (watch, sign, jobs) serve /metrics on this port
    # (0: none). The API serves /metrics itself.
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # How often each process samples head lag, pending confirmations and the
    # relayer queue for its gauges.
    metrics_interval_s: float = Field(5.0, gt=0, le=3600)
    # SIGTERM: seconds to let the current unit of work finish before exiting.
    shutdown_grace_s: float = Field(20.0, gt=0, le=600)
    # Tests only (the crash suite): "point:n" kills the process at the n-th
    # hit of a crash point (node/crashpoints.py); the marker file records it.
    crash_at: str | None = None
    crash_marker: str | None = None
