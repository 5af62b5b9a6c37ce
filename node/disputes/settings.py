"""Settings of this slice: the ``[disputes]`` block of escrowd.toml
(ESCROWD_DISPUTES__* variables)."""

from __future__ import annotations

from node.settings_base import Section


class DisputeSettings(Section):
    pass
