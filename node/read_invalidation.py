"""Which committed writes invalidate which cached reads (``node.read_cache``).

Registered on every SQLAlchemy ``Session`` when this module is imported
(``node.db.session`` does): each flush records the scopes its rows belong
to; just before commit they are sent with ``pg_notify`` (PostgreSQL: the
notification is delivered to the fleet's other processes at commit, never for
a rollback); after commit this process' cache is bumped. A bulk UPDATE or
DELETE on a table behind the views marks everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TextClause, event, inspect, text
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from node.db.models import CryptoCurrency, P2PEscrow, P2POrder, User
from node.db.models_accounts import AuthSession
from node.db.models_market import OrderPricing
from node.read_cache import (
    ALL,
    AUTH,
    BOOK,
    MINE,
    book_scope,
    encode_scopes,
    read_cache,
    user_scope,
)

CHANNEL = "escrowd_reads"
_MARKS = "escrowd.read_marks"

# tables behind the cached views -> what a bulk statement on them invalidates
_TABLES = {
    P2POrder.__tablename__: ALL,
    P2PEscrow.__tablename__: ALL,
    OrderPricing.__tablename__: ALL,
    CryptoCurrency.__tablename__: ALL,
    User.__tablename__: AUTH,
    AuthSession.__tablename__: AUTH,
}


def scopes_of(obj: object, session: Session | None = None) -> set[str]:
    """The cached views a changed row belongs to."""
    if isinstance(obj, OrderPricing):
        # an order's pricing: that order's views when it is at hand (it is
        # when an ad is posted or repriced), else every view
        order = session.identity_map.get(
            session.identity_key(P2POrder, obj.p2p_order_id)) if session else None
        return scopes_of(order) if order is not None else {ALL}
    if isinstance(obj, P2POrder):
        out = {user_scope(uid) for uid in _values(obj, "seller_id", "buyer_id")}
        if obj.kind != "trade":
            out.add(BOOK)
            out |= {book_scope(c, f) for c in _values(obj, "crypto_currency_id")
                    for f in _values(obj, "fiat_currency")}
        return out
    if isinstance(obj, P2PEscrow):
        return {MINE}
    if isinstance(obj, CryptoCurrency):
        return {ALL}
    if isinstance(obj, (User, AuthSession)):
        return {AUTH}
    return set()


def _values(obj: object, *attrs: str) -> set[Any]:
    """Current and (for a changed attribute) previous values, but None."""
    state = inspect(obj)
    out: set[Any] = set()
    for name in attrs:
        hist = state.attrs[name].history
        out.update(v for v in (*hist.added, *hist.unchanged, *hist.deleted) if v is not None)
    return out


def _mark(session: Session, scopes: set[str]) -> None:
    if scopes:
        session.info.setdefault(_MARKS, set()).update(scopes)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx: Any) -> None:
    scopes: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        scopes |= scopes_of(obj, session)
    _mark(session, scopes)


_WRITES = ("insert", "update", "delete", "truncate", "merge")


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    statement = state.statement
    if isinstance(statement, TextClause):
        # raw SQL through a session: whatever it writes may be under a view
        if statement.text.lstrip()[:8].lower().startswith(_WRITES):
            _mark(state.session, {ALL})
        return
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    scope = _TABLES.get(getattr(table, "name", ""))
    if scope is not None:
        _mark(state.session, {scope})


@event.listens_for(Session, "before_commit")
def _notify(session: Session) -> None:
    # commit flushes after this hook: flush first so its marks are counted
    session.flush()
    marks = session.info.get(_MARKS)
    if marks and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, :p)"),
                        {"c": CHANNEL, "p": encode_scopes(marks)})


@event.listens_for(Session, "after_commit")
def _bump(session: Session) -> None:
    marks = session.info.pop(_MARKS, None)
    if marks:
        read_cache.bump(marks)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous: SessionTransaction) -> None:
    # a savepoint's rollback keeps the outer transaction's marks (bumping
    # too much only costs a cache miss)
    if not previous.nested:
        session.info.pop(_MARKS, None)
