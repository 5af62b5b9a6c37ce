"""Dispute time limits and escalation as pure functions of explicit ``now``
values: answers move the case on, missed answers and overdue rulings are
acted on exactly once, reassignment is bounded, the least-loaded arbitrator
gets new cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from node.disputes.deadlines import (
    Stage,
    StepKind,
    Windows,
    next_step,
    opened,
    pick_arbitrator,
    reassigned,
    responded,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
W = Windows(response_s=3600, ruling_s=7200, max_reassignments=1)


def test_opened_sets_both_deadlines() -> None:
    c = opened(T0, W)
    assert c.stage is Stage.AWAITING_RESPONSE
    assert c.response_due == T0 + H and c.ruling_due == T0 + 3 * H


def test_an_answer_moves_the_ruling_deadline_earlier_never_later() -> None:
    early = responded(opened(T0, W), T0 + timedelta(minutes=10), W)
    assert early.stage is Stage.AWAITING_RULING and early.responded
    assert early.ruling_due == T0 + timedelta(minutes=130)
    late = responded(opened(T0, W), T0 + timedelta(minutes=59), W)
    assert late.ruling_due == T0 + timedelta(minutes=179)
    # an answer after the response deadline was missed changes no deadline
    missed = next_step(opened(T0, W), T0 + H, W, other_arbitrator=True).clock
    after = responded(missed, T0 + 2 * H, W)
    assert after.ruling_due == T0 + 3 * H and after.stage is Stage.AWAITING_RULING


def test_nothing_happens_before_a_deadline() -> None:
    c = opened(T0, W)
    step = next_step(c, T0 + H - timedelta(seconds=1), W, other_arbitrator=True)
    assert step.kind is StepKind.NONE and step.clock == c


def test_missed_answer_then_overdue_ruling_is_reassigned_then_flagged() -> None:
    c = opened(T0, W)
    s1 = next_step(c, T0 + H, W, other_arbitrator=True)
    assert s1.kind is StepKind.RESPONSE_MISSED
    assert s1.clock.stage is Stage.AWAITING_RULING and s1.clock.response_missed
    # same moment again: nothing more (idempotent)
    assert next_step(s1.clock, T0 + H, W, other_arbitrator=True).kind is StepKind.NONE
    s2 = next_step(s1.clock, T0 + 3 * H, W, other_arbitrator=True)
    assert s2.kind is StepKind.REASSIGN
    assert s2.clock.stage is Stage.ESCALATED and s2.clock.escalations == 1
    assert s2.clock.ruling_due == T0 + 5 * H
    assert next_step(s2.clock, T0 + 3 * H, W, other_arbitrator=True).kind is StepKind.NONE
    # the second arbitrator is late too: max_reassignments=1 is used up
    s3 = next_step(s2.clock, T0 + 5 * H, W, other_arbitrator=True)
    assert s3.kind is StepKind.FLAG_ADMINS
    assert s3.clock.stage is Stage.ESCALATED and s3.clock.ruling_due is None
    # flagged cases wait for the admins: no further steps, ever
    assert next_step(s3.clock, T0 + 500 * H, W, other_arbitrator=True).kind is StepKind.NONE


def test_without_another_arbitrator_an_overdue_ruling_goes_to_the_admins() -> None:
    c = responded(opened(T0, W), T0, W)
    step = next_step(c, T0 + 2 * H, W, other_arbitrator=False)
    assert step.kind is StepKind.FLAG_ADMINS and step.clock.escalations == 1


def test_ruled_cases_never_escalate() -> None:
    c = opened(T0, W)
    from dataclasses import replace

    ruled = replace(c, stage=Stage.RULED, ruling_due=None)
    assert next_step(ruled, T0 + 100 * H, W, other_arbitrator=True).kind is StepKind.NONE


def test_admin_reassignment_reopens_an_escalated_case_with_a_fresh_deadline() -> None:
    c = next_step(opened(T0, W), T0 + H, W, other_arbitrator=False).clock
    flagged = next_step(c, T0 + 3 * H, W, other_arbitrator=False).clock
    back = reassigned(flagged, T0 + 10 * H, W)
    assert back.stage is Stage.AWAITING_RULING and back.ruling_due == T0 + 12 * H
    # a reassignment before the answer keeps the answer window open
    early = reassigned(opened(T0, W), T0 + timedelta(minutes=5), W)
    assert early.stage is Stage.AWAITING_RESPONSE and early.ruling_due == T0 + 3 * H


def test_pick_arbitrator_least_loaded_lowest_id_excluding() -> None:
    assert pick_arbitrator({}) is None
    assert pick_arbitrator({5: 2, 3: 1, 9: 1}) == 3
    assert pick_arbitrator({5: 2, 3: 1, 9: 1}, exclude=frozenset({3})) == 9
    assert pick_arbitrator({5: 0}, exclude=frozenset({5})) is None


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=30),
    answer_at=st.one_of(st.none(), st.integers(min_value=0, max_value=20_000)),
    others=st.booleans(),
    max_reassign=st.integers(min_value=0, max_value=3),
)
def test_any_run_of_the_job_is_idempotent_and_bounded(
    steps: list[int], answer_at: int | None, others: bool, max_reassign: int
) -> None:
    """Whatever moments the job runs at (in order), and whenever the answer
    comes: a second run at the same moment does nothing, the case escalates
    at most max_reassignments + 1 times, and a case with a ruling deadline
    in the past never stays unescalated after a run."""
    w = Windows(response_s=600, ruling_s=1200, max_reassignments=max_reassign)
    clock = opened(T0, w)
    for offset in sorted(steps):
        now = T0 + timedelta(seconds=offset)
        if answer_at is not None and offset >= answer_at and not clock.responded:
            clock = responded(clock, T0 + timedelta(seconds=answer_at), w)
        for _ in range(3):  # the job may find a missed answer and an overdue ruling at once
            clock = next_step(clock, now, w, other_arbitrator=others).clock
        assert next_step(clock, now, w, other_arbitrator=others).kind is StepKind.NONE
        assert clock.escalations <= max_reassign + 1
        assert clock.ruling_due is None or clock.ruling_due > now
        if clock.stage is Stage.AWAITING_RESPONSE:
            assert now < clock.response_due
