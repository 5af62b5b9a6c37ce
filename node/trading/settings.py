"""Settings of this slice: the ``[trading]`` block of escrowd.toml, ESCROWD_TRADING__* variables."""

from __future__ import annotations

from node.settings_base import Section


class TradingSettings(Section):
    pass
