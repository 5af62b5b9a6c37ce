"""Fleet: claimed jobs and process bookkeeping.

Imported by node.db.models (at its end) so one Base.metadata holds every table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db.models import Base


class OpsJob(Base):
    """One periodic job of the node (``expire-unfunded``, the slices' jobs).

    Any number of ``escrowd jobs`` processes run the same schedule; a run is
    claimed by locking the job's row with ``SELECT ... FOR UPDATE SKIP
    LOCKED`` for the length of the run and moving ``next_run_at`` on in the
    same transaction, so two processes never run one job concurrently and a
    job is not run twice for one period. A process that dies mid-run drops
    its lock with its connection; the next due check takes the job over."""

    __tablename__ = "ops_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    every_s: Mapped[float] = mapped_column(Float)
    next_run_at: Mapped[datetime]
    runs: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_owner: Mapped[str | None] = mapped_column(String(128))
