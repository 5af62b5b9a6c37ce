"""Dispute time limits and escalation, as pure functions of plain values.

A dispute opens in ``awaiting_response``: the counterparty has until
``response_due`` to answer with evidence. Once they answer, or once that
deadline passes without an answer, the case waits for the ruling until
``ruling_due``. A ruling that is overdue escalates the case: it goes to
another arbitrator with a fresh ruling deadline (at most ``max_reassignments``
times), after which it stays ``escalated`` for the admins, with no deadline.

Every function takes ``now`` explicitly, so the same inputs give the same
answer: running the escalation job twice at one moment changes nothing the
second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Stage(StrEnum):
    AWAITING_RESPONSE = "awaiting_response"
    AWAITING_RULING = "awaiting_ruling"
    ESCALATED = "escalated"
    RULED = "ruled"


@dataclass(frozen=True)
class Windows:
    response_s: int
    ruling_s: int
    max_reassignments: int


@dataclass(frozen=True)
class Clock:
    """Where a case stands in time."""

    stage: Stage
    response_due: datetime
    ruling_due: datetime | None
    responded: bool = False
    response_missed: bool = False
    escalations: int = 0


class StepKind(StrEnum):
    NONE = "none"
    RESPONSE_MISSED = "response_missed"
    REASSIGN = "reassign"
    FLAG_ADMINS = "flag_admins"


@dataclass(frozen=True)
class Step:
    """What the escalation job does to a case now, and the clock after it."""

    kind: StepKind
    clock: Clock
    reason: str = ""


def opened(now: datetime, windows: Windows) -> Clock:
    """The clock of a dispute opened at ``now``."""
    response_due = now + timedelta(seconds=windows.response_s)
    return Clock(
        stage=Stage.AWAITING_RESPONSE,
        response_due=response_due,
        ruling_due=response_due + timedelta(seconds=windows.ruling_s),
    )


def responded(clock: Clock, now: datetime, windows: Windows) -> Clock:
    """The counterparty answered at ``now``: the case waits for the ruling,
    whose deadline counts from the answer (never later than it already was)."""
    if clock.stage is not Stage.AWAITING_RESPONSE:
        return replace(clock, responded=True)
    due = now + timedelta(seconds=windows.ruling_s)
    if clock.ruling_due is not None and clock.ruling_due < due:
        due = clock.ruling_due
    return replace(clock, stage=Stage.AWAITING_RULING, responded=True, ruling_due=due)


def reassigned(clock: Clock, now: datetime, windows: Windows) -> Clock:
    """An admin gave the case to an arbitrator at ``now``: a fresh ruling
    deadline; an escalated case is back in the arbitrators' queue."""
    if clock.stage is Stage.RULED:
        return clock
    stage = clock.stage
    if stage is Stage.ESCALATED:
        stage = Stage.AWAITING_RULING if (clock.responded or clock.response_missed) else (
            Stage.AWAITING_RESPONSE
        )
    due = now + timedelta(seconds=windows.ruling_s)
    if stage is Stage.AWAITING_RESPONSE:
        due = max(due, clock.response_due + timedelta(seconds=windows.ruling_s))
    return replace(clock, stage=stage, ruling_due=due)


def next_step(
    clock: Clock, now: datetime, windows: Windows, *, other_arbitrator: bool
) -> Step:
    """The escalation job's decision for one case at ``now``.

    ``other_arbitrator``: whether someone other than the current arbitrator
    could take the case (if not, an overdue ruling goes to the admins)."""
    if clock.stage in (Stage.RULED,):
        return Step(StepKind.NONE, clock)
    if clock.stage is Stage.AWAITING_RESPONSE and now >= clock.response_due:
        return Step(
            StepKind.RESPONSE_MISSED,
            replace(clock, stage=Stage.AWAITING_RULING, response_missed=True),
            reason="the counterparty did not answer in time",
        )
    if clock.ruling_due is None or now < clock.ruling_due:
        return Step(StepKind.NONE, clock)
    if other_arbitrator and clock.escalations < windows.max_reassignments:
        return Step(
            StepKind.REASSIGN,
            replace(
                clock,
                stage=Stage.ESCALATED,
                escalations=clock.escalations + 1,
                ruling_due=now + timedelta(seconds=windows.ruling_s),
            ),
            reason="ruling overdue: reassigned to another arbitrator",
        )
    return Step(
        StepKind.FLAG_ADMINS,
        replace(clock, stage=Stage.ESCALATED, escalations=clock.escalations + 1, ruling_due=None),
        reason="ruling overdue: no arbitrator left to reassign to; the admins decide",
    )


def pick_arbitrator(
    loads: Mapping[int, int], *, exclude: frozenset[int] = frozenset()
) -> int | None:
    """The arbitrator (user id) with the fewest open disputes, the lowest id
    on a tie; None when nobody is eligible."""
    eligible = [(n, uid) for uid, n in loads.items() if uid not in exclude]
    if not eligible:
        return None
    return min(eligible)[1]
