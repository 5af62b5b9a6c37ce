"""The signing journal (invariant I5: never sign two conflicting actions).

Every payout signature the node makes for an escrow is recorded in
``signing_journal`` in the same database transaction that makes it, and that
transaction first locks the escrow's journal row (or, when there is none yet,
inserts it under a unique constraint). So two requests, two threads or two
node processes racing on one escrow serialize on the database: the first
decision wins, a conflicting one is refused, and a repeated identical one gets
the same answer. The signature leaves this module only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from node.crashpoints import crashpoint
from node.db.models import SigningJournal
from node.errors import SigningError
from node.ops.metrics import SIGNING_DECISIONS, decision_label

PAYOUT = "payout"


@dataclass(frozen=True)
class JournalEntry:
    decision: str
    payload_hash: str
    signature: str


def sign_once(
    sessions: sessionmaker[Session],
    *,
    chain: str,
    escrow_key: str,
    decision: str,
    payload_hash: str,
    sign: Callable[[], str],
) -> JournalEntry:
    """Sign ``decision`` for the escrow unless a conflicting decision was
    signed before. ``sign`` is called at most once, inside the transaction.

    Same decision and payload as before: the recorded signature is returned
    (no second signature). Same decision, new payload (e.g. a fresh nonce
    after a failed relay): signed anew and recorded. Another decision:
    ``SigningError(code="conflicting_decision")``.

    Crash points (tests): ``sign.locked`` after the journal row is
    inserted, ``sign.signed`` after signing but before the commit,
    ``sign.committed`` after the commit."""
    label = decision_label(decision)
    for _attempt in range(2):
        try:
            with sessions() as session, session.begin():
                row = session.scalars(
                    select(SigningJournal)
                    .where(
                        SigningJournal.chain == chain,
                        SigningJournal.escrow_key == escrow_key,
                        SigningJournal.kind == PAYOUT,
                    )
                    .with_for_update()
                ).one_or_none()
                if row is not None:
                    if row.decision != decision:
                        SIGNING_DECISIONS.labels(chain, label, "refused").inc()
                        raise SigningError(
                            f"refusing to sign {decision}: this escrow already has a "
                            f"signed {row.decision}",
                            code="conflicting_decision",
                            signed=row.decision,
                            requested=decision,
                        )
                    if row.payload_hash == payload_hash and row.signature:
                        SIGNING_DECISIONS.labels(chain, label, "repeated").inc()
                        return JournalEntry(row.decision, row.payload_hash, row.signature)
                    row.payload_hash = payload_hash
                    row.signature = sign()
                    crashpoint("sign.signed")
                    entry = JournalEntry(row.decision, row.payload_hash, row.signature)
                else:
                    row = SigningJournal(
                        chain=chain,
                        escrow_key=escrow_key,
                        kind=PAYOUT,
                        decision=decision,
                        payload_hash=payload_hash,
                    )
                    session.add(row)
                    session.flush()  # takes the unique slot, or waits for the racer
                    crashpoint("sign.locked")
                    row.signature = sign()
                    crashpoint("sign.signed")
                    entry = JournalEntry(row.decision, row.payload_hash, row.signature)
        except IntegrityError:
            continue  # a racer inserted first: re-read its decision
        crashpoint("sign.committed")
        SIGNING_DECISIONS.labels(chain, label, "signed").inc()
        return entry
    raise SigningError("signing journal is contended; retry", code="journal_busy")


def signed_decision(session: Session, *, chain: str, escrow_key: str) -> str | None:
    return session.scalar(
        select(SigningJournal.decision).where(
            SigningJournal.chain == chain,
            SigningJournal.escrow_key == escrow_key,
            SigningJournal.kind == PAYOUT,
        )
    )
