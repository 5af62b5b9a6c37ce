"""Settings of this slice: the ``[market]`` block of escrowd.toml, ESCROWD_MARKET__* variables."""

from __future__ import annotations

from node.settings_base import Section


class MarketSettings(Section):
    pass
