"""Custody: deposit addresses, the double-entry ledger, holds, withdrawals, sweeps.

Imported by node.db.models (at its end) so one Base.metadata holds every table.

Ledger amounts are *signed* integers in base units (``SignedUnits``): a leg's
amount is added to its account's balance (see ``node.custody.ledger``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from node.db.models import Base, utcnow


class SignedUnits(TypeDecorator[int]):
    """A signed integer amount in base units, up to +-10**77.

    NUMERIC(78, 0) on PostgreSQL (sums stay exact in SQL); on SQLite, whose
    NUMERIC turns big integers into floats, the decimal string (sums are then
    done in Python, see ``node.custody.ledger``)."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(78, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"base-unit amounts are ints, got {type(value).__name__}")
        if dialect.name == "sqlite":
            return str(value)
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:  # noqa: ARG002
        if value is None:
            return None
        return int(value)


# --- the ledger -------------------------------------------------------------


class CustodyEntry(Base):
    """One balanced entry; ``ref`` makes posting idempotent."""

    __tablename__ = "custody_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    # sha256 of the canonical leg set: a re-post under the same ref must match it.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustodyLeg(Base):
    __tablename__ = "custody_legs"
    __table_args__ = (Index("ix_custody_legs_account_asset", "account", "asset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("custody_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(120))
    asset: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(SignedUnits())


class CustodyBalance(Base):
    """Cache of sum(legs) per (account, asset), updated under a row lock in the
    same transaction as the legs; ``ledger.check_balances`` proves it."""

    __tablename__ = "custody_balances"

    account: Mapped[str] = mapped_column(String(120), primary_key=True)
    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    balance: Mapped[int] = mapped_column(SignedUnits(), default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
