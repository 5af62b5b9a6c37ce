"""Marketplace: payment methods, verification, reputation, prices.

Modules: ``payment_methods`` (CRUD, details encrypted by ``crypto``, shown to
the counterparty of an active trade), ``verification`` (levels, documents in
``node.storage``, admin review), ``limits`` and ``opening`` (per-level trade
limits and ad/trade pricing, called by ``node.trades``), ``pricing`` (pure
price math) and ``prices`` (sources, stored quotes, the index),
``reputation_calc`` (pure) and ``reputation`` (rows, the trade-ended hook,
the backstop), ``service`` (the node's periodic jobs).

Operating it (``[market]`` block, ``ESCROWD_MARKET__*``):

- ``payment_key``: base64url of 32 random bytes, required in production
  (``python -c 'import node.market.crypto as c; print(c.new_key())'``);
  ``payment_old_keys`` keeps older keys readable after a rotation.
- Prices: by default the file ``<data_dir>/prices.json`` is read every
  ``price_refresh_s``: ``{"quotes": [{"base": "ETH", "quote": "EUR", "price":
  "3150.5", "observed_at": "2026-11-30T12:00:00Z"}]}`` (or a ``.csv`` with
  ``base,quote,price,observed_at``; without ``observed_at`` a quote is as old
  as the file). Quotes older than ``price_max_age_s`` are stale: margin ads
  are then refused (503 ``price_stale``). FX pairs (``EUR``/``USD``) may be
  quoted too; they value trades for the limits.
- Limits: ``trade_limits`` per level in ``limits_fiat`` (on in production,
  off in dev unless ``trade_limits_enabled``).
- Uploads: ``storage_url`` (default ``<data_dir>/files``), or
  ``s3://bucket/prefix`` for S3-compatible storage (``s3_*`` settings).
"""
