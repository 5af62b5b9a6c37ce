"""Settings of this slice: the ``[custody]`` block of escrowd.toml, ESCROWD_CUSTODY__* variables."""

from __future__ import annotations

from node.settings_base import Section


class CustodySettings(Section):
    pass
