"""Dispute deadlines applied by the escalation job on a real database, with
explicit ``now`` values: a missed answer moves the case on, an overdue ruling
is reassigned to another arbitrator (stage ``escalated``), and once no
reassignment is left the case is flagged to the admins; running the job again
at the same moment changes nothing. Each step is a trade event."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from node.db.models import P2PDispute
from node.db.models_disputes_ext import DisputeCase, TradeEvent
from node.db.session import transaction
from node.disputes.cases import escalate_overdue
from tests.api.conftest import Api
from tests.api.disputes_fixtures import *  # noqa: F403
from tests.api.disputes_fixtures import People, opened_dispute, user_id


def _run(api: Api, now: datetime) -> list[tuple[int, str]]:
    with transaction(api.node.sessions) as s:
        return escalate_overdue(s, cfg=api.node.settings.disputes, now=now)


def _state(api: Api, d: int) -> tuple[str, int | None, int]:
    with transaction(api.node.sessions) as s:
        case = s.scalar(select(DisputeCase).where(DisputeCase.dispute_id == d))
        dispute = s.get(P2PDispute, d)
        assert case is not None and dispute is not None
        return case.stage, dispute.arbitrator_user_id, case.escalations


def test_deadlines_escalate_once_each(api: Api, people: People) -> None:
    cfg = api.node.settings.disputes
    assert {"dispute-escalation", "webhook-delivery", "events-retention"} <= {
        j[0] for j in api.node.jobs}
    t, d = opened_dispute(api)
    arb1 = user_id(api, "arbitrator")
    with transaction(api.node.sessions) as s:
        case = s.scalar(select(DisputeCase).where(DisputeCase.dispute_id == d))
        assert case is not None
        response_due = case.response_due_at
    assert _run(api, response_due - timedelta(seconds=1)) == []
    assert _run(api, response_due) == [(d, "response_missed")]
    assert _run(api, response_due) == []  # idempotent
    assert _state(api, d) == ("awaiting_ruling", arb1, 0)

    ruling_due = response_due + timedelta(seconds=cfg.ruling_window_s)
    assert _run(api, ruling_due) == [(d, "reassign")]
    assert _run(api, ruling_due) == []
    assert _state(api, d) == ("escalated", people.arb2_id, 1)
    # arb2 is late too: back to the other arbitrator (max_reassignments = 2)
    later = ruling_due + timedelta(seconds=cfg.ruling_window_s)
    assert _run(api, later) == [(d, "reassign")]
    assert _state(api, d) == ("escalated", arb1, 2)
    last = later + timedelta(seconds=cfg.ruling_window_s)
    assert _run(api, last) == [(d, "flag_admins")]
    assert _run(api, last + timedelta(days=365)) == []
    assert _state(api, d) == ("escalated", arb1, 3)
    detail = api.get(f"/api/p2p-crypto/disputes/{d}", "admin").json()
    assert detail["case"]["ruling_due_at"] is None and detail["case"]["escalation_reason"]
    # the dispute stays open for the chains' signing policies
    assert detail["dispute"]["status"] == "open"
    # the admins' queue
    queue = api.get("/api/p2p-crypto/disputes", "admin", params={"stage": "escalated"}).json()
    assert [x["id"] for x in queue] == [d]
    assert api.get("/api/p2p-crypto/disputes", "admin",
                   params={"stage": "awaiting_ruling"}).json() == []
    assert [x["id"] for x in api.get("/api/p2p-crypto/disputes", "arbitrator",
                                     params={"mine": "true"}).json()] == [d]
    assert api.get("/api/p2p-crypto/disputes", "arb2", params={"mine": "true"}).json() == []
    assert api.get("/api/p2p-crypto/disputes", "admin", params={"stage": "x"}).status_code == 422

    with transaction(api.node.sessions) as s:
        kinds = s.scalars(
            select(TradeEvent.kind).where(TradeEvent.p2p_order_id == t).order_by(TradeEvent.id)
        ).all()
    assert [k for k in kinds if k.startswith("dispute.")] == [
        "dispute.opened", "dispute.response_missed", "dispute.escalated",
        "dispute.escalated", "dispute.escalated",
    ]

    # a dispute whose answer and ruling are both overdue when the job runs:
    # both steps in one run (it went to arb2, who had fewer open disputes)
    _t2, d2 = opened_dispute(api)
    assert _state(api, d2) == ("awaiting_response", people.arb2_id, 0)
    with transaction(api.node.sessions) as s:
        case2 = s.scalar(select(DisputeCase).where(DisputeCase.dispute_id == d2))
        assert case2 is not None and case2.ruling_due_at is not None
        overdue = case2.ruling_due_at
    assert _run(api, overdue) == [(d2, "response_missed"), (d2, "reassign")]
    assert _run(api, overdue) == []
    assert _state(api, d2) == ("escalated", arb1, 1)

    # an admin takes the case back to an arbitrator: a fresh ruling deadline
    r = api.post(f"/api/p2p-crypto/disputes/{d}/assign", "admin",
                 json={"arbitrator_user_id": people.arb2_id})
    assert r.status_code == 200
    assert r.json()["case"]["stage"] == "awaiting_ruling"
    assert r.json()["case"]["ruling_due_at"] is not None
