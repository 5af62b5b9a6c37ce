"""This slice's hook into a running node (see ``node.runtime.SLICE_SERVICES``):
the dispute escalation job and the webhook delivery job."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx

from node.db.models import utcnow
from node.db.session import transaction
from node.disputes.cases import escalate_overdue
from node.events.secrets import WebhookSecrets
from node.events.webhooks import deliver_due, purge_old

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger("escrowd.disputes")


def install(node: Node) -> None:
    """Register this slice's periodic jobs (``node.jobs``), threads and closers."""
    cfg = node.settings.disputes
    client = httpx.Client()
    node.closers.append(client.close)

    def escalate() -> None:
        with transaction(node.sessions) as session:
            changes = escalate_overdue(session, cfg=cfg, now=utcnow())
        if changes:
            log.info("dispute deadlines applied: %s", changes)

    allow_private = (
        cfg.events.webhook_allow_private
        if cfg.events.webhook_allow_private is not None
        else node.settings.mode == "dev"
    )

    box: list[WebhookSecrets] = []

    def webhooks() -> None:
        if not box:  # the node's secret is read when first needed
            box.append(WebhookSecrets.from_settings(node.settings))
        while deliver_due(node.sessions, cfg.events, client=client, secrets_box=box[0],
                          allow_private=allow_private) >= cfg.events.webhook_batch:
            pass

    def retention() -> None:
        older = utcnow() - timedelta(days=cfg.events.retention_days)
        with transaction(node.sessions) as session:
            deleted = purge_old(session, older_than=older)
        if any(deleted):
            log.info("purged %s webhook deliveries and %s trade events", *deleted)

    node.jobs.append(("dispute-escalation", escalate, cfg.escalation_every_s))
    node.jobs.append(("events-retention", retention, cfg.events.retention_every_s))
    node.jobs.append(("webhook-delivery", webhooks, cfg.events.webhook_every_s))
