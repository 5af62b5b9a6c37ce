"""Periodic jobs claimed through the database, so that any number of
``escrowd jobs`` processes can run one schedule.

Each process's scheduler (APScheduler) fires every job at its interval and
calls ``run_if_due``, which locks the job's ``ops_jobs`` row with ``SELECT
... FOR UPDATE SKIP LOCKED`` only if the job is due, runs it while holding
the lock, and moves ``next_run_at`` on in the same transaction. Another
process firing meanwhile skips the locked row (no waiting, no second run);
one firing just after finds the job not due. A process killed mid-run loses
its lock with its connection and the run is taken over at the next firing.
The jobs themselves work in their own transactions and are idempotent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from node.db.models_jobs import OpsJob
from node.ops.logs import log_context
from node.ops.metrics import JOB_RUNS

log = logging.getLogger("escrowd.jobs")


def utcnow() -> datetime:
    return datetime.now(UTC)


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def next_run_after(finished: datetime, every_s: float) -> datetime:
    """When a job that finished at ``finished`` is due again."""
    return finished + timedelta(seconds=every_s)


def register_jobs(
    sessions: sessionmaker[Session], jobs: Iterable[tuple[str, float]], *,
    now: Callable[[], datetime] = utcnow,
) -> None:
    """Create the rows of jobs not known yet (due at once); keep the
    schedule of the others, with this process's interval."""
    with sessions() as s, s.begin():
        dialect = s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        for job_id, every_s in jobs:
            s.execute(
                insert(OpsJob)
                .values(id=job_id, every_s=every_s, next_run_at=now(), runs=0)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            s.execute(update(OpsJob).where(OpsJob.id == job_id).values(every_s=every_s))


def run_if_due(
    sessions: sessionmaker[Session],
    job_id: str,
    fn: Callable[[], object],
    *,
    owner: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> bool:
    """Run ``fn`` if the job is due and no other process is running it;
    True if it ran here (successfully or not: a failure is logged, recorded
    on the row and counted, and the job is due again after its interval)."""
    with sessions() as s, s.begin():
        row = s.execute(
            select(OpsJob)
            .where(OpsJob.id == job_id, OpsJob.next_run_at <= now())
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if row is None:
            return False
        row.last_started_at = now()
        row.last_owner = owner or owner_name()
        with log_context(job_id=job_id):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a job failure must not end the schedule
                log.exception("job %s failed", job_id)
                row.last_error = repr(exc)[:2000]
                JOB_RUNS.labels(job_id, "failed").inc()
            else:
                row.last_error = None
                JOB_RUNS.labels(job_id, "ok").inc()
        finished = now()
        row.runs = (row.runs or 0) + 1
        row.last_finished_at = finished
        row.next_run_at = next_run_after(finished, row.every_s)
    return True
