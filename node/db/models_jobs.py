"""Fleet: claimed jobs and process bookkeeping.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations
