"""Settings of this slice: the ``[market]`` block of escrowd.toml, ESCROWD_MARKET__* variables."""

from __future__ import annotations

from node.settings_base import Section


class MarketSettings(Section):
    # Where uploaded files (verification documents, dispute evidence) live:
    # None = a directory ``files/`` under ``data_dir``; ``file:///abs/path`` or
    # a plain path = that directory; ``s3://bucket/prefix`` needs an S3 client
    # library (none is installed: refused with a config error naming this).
    storage_url: str | None = None
