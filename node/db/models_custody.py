"""Custody: deposit addresses, the double-entry ledger, holds, withdrawals, sweeps.

Imported by node.db.models (at its end) so one Base.metadata holds every table.

Ledger amounts are *signed* integers in base units (``SignedUnits``): a leg's
amount is added to its account's balance (see ``node.custody.ledger``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from node.db.models import Base, utcnow
from node.db.types import BaseUnits


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


# --- deposit addresses and deposits ---------------------------------------


class CustodyAddress(Base):
    """A user's deposit address on one chain, derived from the custody seed at
    ``path`` (see wallets.custody_keys); allocated once."""

    __tablename__ = "custody_addresses"
    __table_args__ = (
        UniqueConstraint("chain", "user_id"),
        UniqueConstraint("chain", "address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    chain: Mapped[str] = mapped_column(String(16))  # btc | evm | sol
    address: Mapped[str] = mapped_column(String(128))
    script_hex: Mapped[str | None] = mapped_column(String(68))  # Bitcoin scriptPubKey
    path: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustodyDeposit(Base):
    """A payment to a deposit address, as the deposit watcher saw it.

    ``status``: ``credited`` (confirmed, in the user's balance) or
    ``reversed`` (its block left the chain, the credit was taken back). A
    deposit reversed and then mined again is credited again (``credits``
    counts it, and makes each ledger ref unique)."""

    __tablename__ = "custody_deposits"
    __table_args__ = (UniqueConstraint("chain", "txid", "output"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))  # the watcher's chain key
    asset: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str] = mapped_column(String(128))
    txid: Mapped[str] = mapped_column(String(100))
    output: Mapped[int] = mapped_column(Integer)  # Bitcoin vout; EVM log index or -1 (native)
    amount: Mapped[int] = mapped_column(BaseUnits())
    block_number: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="credited")
    credits: Mapped[int] = mapped_column(Integer, default=0)
    spent_txid: Mapped[str | None] = mapped_column(String(100))  # Bitcoin: swept by
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- withdrawals ------------------------------------------------------------


class CustodyAllowedAddress(Base):
    """A withdrawal address on a user's allow-list, usable from ``usable_from``."""

    __tablename__ = "custody_allowed_addresses"
    __table_args__ = (UniqueConstraint("user_id", "chain", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    chain: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(64))
    usable_from: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustodyWithdrawal(Base):
    """A withdrawal: ``held`` at request (funds on hold), ``broadcast`` once
    signed by the hot wallet and sent, ``confirmed`` (the hold settled into a
    debit) or ``failed`` (the hold released)."""

    __tablename__ = "custody_withdrawals"
    __table_args__ = (UniqueConstraint("user_id", "request_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    request_key: Mapped[str] = mapped_column(String(100))
    chain: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))
    amount: Mapped[int] = mapped_column(BaseUnits())
    network_fee: Mapped[int | None] = mapped_column(BaseUnits())
    status: Mapped[str] = mapped_column(String(16), default="held", index=True)
    txid: Mapped[str | None] = mapped_column(String(100))
    raw_tx: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustodySweep(Base):
    """A node-internal transfer: deposit address -> hot wallet, or hot wallet
    excess -> the cold address. ``status`` as for withdrawals."""

    __tablename__ = "custody_sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # to_hot | to_cold
    chain: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(16))
    from_address: Mapped[str] = mapped_column(String(128))
    to_address: Mapped[str] = mapped_column(String(128))
    amount: Mapped[int] = mapped_column(BaseUnits())
    network_fee: Mapped[int] = mapped_column(BaseUnits())
    status: Mapped[str] = mapped_column(String(16), default="broadcast", index=True)
    txid: Mapped[str] = mapped_column(String(100), unique=True)
    raw_tx: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CustodyObservation(Base):
    """Solana deposits: what has been credited for one deposit account (the
    user's wallet for SOL, its associated token account per SPL mint), as
    last read at the commitment (see node.custody.sol_watch)."""

    __tablename__ = "custody_observations"
    __table_args__ = (UniqueConstraint("chain", "account", "asset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    credited: Mapped[int] = mapped_column(BaseUnits(), default=0)
    changes: Mapped[int] = mapped_column(Integer, default=0)  # numbers each ledger ref
    slot: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
