"""Custody: deposit addresses, the double-entry ledger, holds, withdrawals, sweeps.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations
