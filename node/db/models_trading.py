"""Order-book trading: pairs, trading orders, fills, the engine's event log.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations
