"""Settings of this slice: the ``[trading]`` block of escrowd.toml, ESCROWD_TRADING__* variables."""

from __future__ import annotations

from pydantic import Field

from node.settings_base import Section


class TradingSettings(Section):
    # GTD expiry: how often the node sends the engines a clock tick (seconds).
    expire_interval_s: float = Field(1.0, gt=0, le=3600)
    # Pairs created at start-up when both currencies exist (base, quote symbols);
    # None: BTC/USDT and ETH/USDT in dev mode, none in production.
    seed_pairs: list[tuple[str, str]] | None = None
    # A market-data stream with no local event catches up from the log this often.
    stream_poll_s: float = Field(0.5, gt=0, le=60)
    # Recovery: a snapshot of each engine every this many log commands (0: never),
    # so a restart replays only the log after the newest one.
    snapshot_every: int = Field(2000, ge=0, le=10_000_000)
    # Largest number of price levels a depth request or stream snapshot returns.
    max_depth: int = Field(200, ge=1, le=10_000)
