"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine


class BaseUnits(TypeDecorator[int]):
    """A non-negative integer amount in base units (wei, sat, lamports, token units).

    Up to 2**256: NUMERIC(78, 0) on PostgreSQL; on SQLite, whose NUMERIC silently
    turns big integers into floats, a zero-padded decimal string (so it still
    sorts and compares correctly)."""

    impl = Numeric(78, 0)
    cache_ok = True
    WIDTH = 78

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.WIDTH))
        return dialect.type_descriptor(Numeric(78, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"base-unit amounts are ints, got {type(value).__name__}")
        if value < 0:
            raise ValueError("base-unit amounts are never negative")
        if dialect.name == "sqlite":
            return str(value).rjust(self.WIDTH, "0")
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:  # noqa: ARG002
        if value is None:
            return None
        return int(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend. SQLite keeps no zone
    and hands back naive datetimes; this puts UTC back on them, so code never
    compares naive with aware times."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
