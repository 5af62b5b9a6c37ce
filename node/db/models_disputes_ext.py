"""Disputes beyond the ruling: evidence, assignment, deadlines; trade events outbox and webhooks.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations
