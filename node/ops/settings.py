"""Settings of this slice: the ``[ops]`` block of escrowd.toml, ESCROWD_OPS__* variables."""

from __future__ import annotations

from node.settings_base import Section


class OpsSettings(Section):
    pass
