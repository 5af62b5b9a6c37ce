"""Settings of this slice: the ``[disputes]`` block of escrowd.toml
(ESCROWD_DISPUTES__* variables), with ``[disputes.events]`` for trade events
and webhooks."""

from __future__ import annotations

from pydantic import Field

from node.settings_base import Section


class EventSettings(Section):
    # Server-Sent Events: how often a stream looks for new events, sends a
    # keep-alive comment, and how long one stream lasts at most (the client
    # reconnects with Last-Event-ID, as SSE clients do).
    sse_poll_ms: int = Field(500, ge=10, le=60_000)
    sse_keepalive_s: float = Field(15, gt=0, le=600)
    sse_max_duration_s: float = Field(300, gt=0, le=86_400)
    # Webhooks: the delivery job's period and batch, each POST's timeout, and
    # the retry schedule (base * 2**(attempt-1), capped) up to max_attempts.
    webhook_every_s: float = Field(2, gt=0, le=3600)
    webhook_batch: int = Field(50, ge=1, le=1000)
    webhook_timeout_s: float = Field(5, gt=0, le=60)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_s: float = Field(10, ge=0, le=3600)
    webhook_backoff_cap_s: float = Field(3600, ge=0, le=86_400)
    webhook_max_per_user: int = Field(10, ge=1, le=100)
    # Events and finished webhook deliveries older than this are deleted
    # (an SSE client away longer resumes from the oldest event kept).
    retention_days: int = Field(30, ge=1, le=3650)
    retention_every_s: float = Field(3600, gt=0, le=86_400)
    # Webhook URLs on loopback / private / link-local addresses are refused
    # (SSRF) unless this is on; None: allowed in dev mode only.
    webhook_allow_private: bool | None = None


class DisputeSettings(Section):
    # The counterparty has this long to answer (evidence) once a dispute opens.
    response_window_s: int = Field(72 * 3600, ge=1, le=90 * 86_400)
    # The assigned arbitrator has this long to rule, counted from the answer
    # (or the missed answer deadline), and again after each reassignment.
    ruling_window_s: int = Field(72 * 3600, ge=1, le=90 * 86_400)
    # An overdue ruling is reassigned at most this many times; then the case
    # stays escalated for the admins.
    max_reassignments: int = Field(2, ge=0, le=20)
    escalation_every_s: float = Field(60, gt=0, le=86_400)
    # Unsigned rulings (an arbitrator with no registered EVM key, API token
    # only): None = allowed in dev mode only; production needs a signature.
    allow_unsigned_rulings: bool | None = None
    # A signed ruling's timestamp must be this fresh (and not in the future
    # by more than the skew).
    ruling_max_age_s: int = Field(3600, ge=60, le=30 * 86_400)
    ruling_max_skew_s: int = Field(300, ge=0, le=3600)
    evidence_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    evidence_max_items: int = Field(100, ge=1, le=10_000)
    events: EventSettings = EventSettings()
