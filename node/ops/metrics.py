"""Prometheus metrics of a node process (prometheus-client's default registry).

Each process exposes its own view: the API at ``GET /metrics``, the other
roles on ``ops.metrics_port``. Counters and histograms are updated where the
work happens (signing decisions in node.signing, request latency in
api.observability, job runs in node.ops.jobs); the gauges that describe the
database (relayer queue, pending confirmations, watcher head) are sampled
from it by ``sample_db``, and head lag needs the chain's tip, which only a
process with the chain's adapter (a watcher) samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from node.db.models import ChainCursor, ChainEvent, RelayJob

HEAD_BLOCK = Gauge("escrowd_chain_head_block", "Newest block the watcher indexed", ["chain"])
TIP_BLOCK = Gauge("escrowd_chain_tip_block", "Newest block the chain's node reports", ["chain"])
HEAD_LAG = Gauge(
    "escrowd_chain_head_lag_blocks", "Blocks between the chain's tip and the indexed head",
    ["chain"],
)
CONFIRMATIONS_PENDING = Gauge(
    "escrowd_confirmations_pending",
    "Indexed escrow events that have not reached the configured confirmations",
    ["chain"],
)
RELAYER_QUEUE = Gauge(
    "escrowd_relayer_queue", "Relay jobs by status (queued, signed, sent, mined)",
    ["chain", "status"],
)
SIGNING_DECISIONS = Counter(
    "escrowd_signing_decisions_total",
    "Payout signing decisions: signed (new), repeated (same answer again), refused (conflict)",
    ["chain", "decision", "outcome"],
)
API_LATENCY = Histogram(
    "escrowd_api_request_duration_seconds", "API request latency by route template",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READ_CACHE = Counter(
    "escrowd_read_cache_total",
    "Cached reads (order book, order lists): hit, stale (served while one caller "
    "refreshes it), miss (answered by the handler), waited (for an identical request)",
    ["result"],
)
JOB_RUNS = Counter("escrowd_job_runs_total", "Claimed periodic job runs", ["job", "outcome"])
LEADER = Gauge("escrowd_leader", "1 while this process holds the role's leadership", ["role"])

ACTIVE_RELAY = ("queued", "signed", "sent", "mined")

_heads: dict[str, int] = {}  # last sampled head per chain, for the lag


def decision_label(decision: str) -> str:
    """A bounded label: ``split:3000`` counts as ``split``."""
    return decision.split(":", 1)[0]


def sample_db(
    sessions: sessionmaker[Session], confirmations: Mapping[str, int] | None = None
) -> None:
    """Set the gauges that describe the database (any process can)."""
    confirmations = confirmations or {}
    with sessions() as s:
        heads = dict(s.execute(select(ChainCursor.chain, ChainCursor.head_number)).tuples().all())
        for chain, head in heads.items():
            HEAD_BLOCK.labels(chain).set(head)
            _heads[chain] = head
            conf = confirmations.get(chain.split(":", 1)[0], 1)
            pending = s.scalar(
                select(func.count()).select_from(ChainEvent).where(
                    ChainEvent.chain == chain, ChainEvent.block_number > head - conf + 1
                )
            )
            CONFIRMATIONS_PENDING.labels(chain).set(pending or 0)
        counts = {
            (c, st): n
            for c, st, n in s.execute(
                select(RelayJob.chain, RelayJob.status, func.count())
                .where(RelayJob.status.in_(ACTIVE_RELAY))
                .group_by(RelayJob.chain, RelayJob.status)
            ).tuples()
        }
        for chain in {c for c, _ in counts} | {c for c in heads if c.startswith("evm")}:
            for status in ACTIVE_RELAY:
                RELAYER_QUEUE.labels(chain, status).set(counts.get((chain, status), 0))


def sample_tips(tips: Mapping[str, Callable[[], int]]) -> None:
    """Head lag per chain: ``tips`` maps a chain key to a function returning
    the chain's tip (the watcher's adapter); the head is the last sampled."""
    for chain, tip_of in tips.items():
        tip = tip_of()
        TIP_BLOCK.labels(chain).set(tip)
        head = _heads.get(chain)
        if head is not None:
            HEAD_LAG.labels(chain).set(max(tip - head, 0))
