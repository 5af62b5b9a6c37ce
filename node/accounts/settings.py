"""Settings of this slice: the ``[auth]`` block of escrowd.toml, ESCROWD_AUTH__* variables."""

from __future__ import annotations

from node.settings_base import Section


class AuthSettings(Section):
    pass
