"""Accounts and trust: credentials, 2FA, wallet links, refresh tokens, audit log, idempotency keys.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations
