"""The price feed: pluggable sources (a registry by ``kind``), their quotes
kept in ``p2p_price_quotes`` (latest per source and pair), and the index
read back from there (median of the fresh quotes, ``pricing.index_of``).

No machine here reaches the internet, so the sources are local: ``file``
(JSON or CSV quotes, refreshed by whatever writes the file) and ``static``
(fixed prices from the configuration, for development). An exchange API
source is one more class with ``name`` and ``fetch(now)``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.db.models import CryptoCurrency
from node.db.models_market import PriceQuote
from node.errors import EscrowdError, ValidationError
from node.market.pricing import IndexPrice, Quote, index_of, pair

if TYPE_CHECKING:
    from node.config import Settings
    from node.market.settings import PriceSourceSettings

log = logging.getLogger("escrowd.market.prices")

MAX_FILE_BYTES = 5 * 1024 * 1024


class PriceSourceError(EscrowdError):
    code = "price_source_error"
    http_status = 502


class PriceSource(Protocol):
    name: str

    def fetch(self, now: datetime) -> list[Quote]:
        """The source's current quotes; PriceSourceError when it cannot answer."""
        ...


def _decimal(v: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(v).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{where}: price {v!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ValidationError(f"{where}: price must be positive")
    return d


def _time(v: Any, default: datetime, where: str) -> datetime:
    if v is None or v == "":
        return default
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{where}: observed_at {v!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise ValidationError(f"{where}: observed_at needs a time zone")
    return t.astimezone(UTC)


def _symbol(v: Any, where: str, max_len: int) -> str:
    s = str(v or "").strip().upper()
    if not s or len(s) > max_len or not s.replace("-", "").isalnum():
        raise ValidationError(f"{where}: bad symbol {v!r}")
    return s


def parse_rows(
    rows: Iterable[dict[str, Any]], *, source: str, default_time: datetime
) -> list[Quote]:
    """Quotes from rows with ``base``, ``quote``, ``price`` and an optional
    ``observed_at`` (ISO 8601 with zone; default ``default_time``)."""
    out = []
    for i, row in enumerate(rows):
        where = f"{source} row {i + 1}"
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: expected an object")
        out.append(
            Quote(
                source=source,
                base=_symbol(row.get("base"), where, 16),
                quote=_symbol(row.get("quote"), where, 8),
                price=_decimal(row.get("price"), where),
                observed_at=_time(row.get("observed_at"), default_time, where),
            )
        )
    return out


def parse_json(text: str, *, source: str, default_time: datetime) -> list[Quote]:
    """``[{"base", "quote", "price", "observed_at"?}, ...]`` or ``{"quotes": [...]}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{source}: not JSON ({exc.msg})") from None
    rows = doc.get("quotes") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ValidationError(f"{source}: expected a list of quotes")
    return parse_rows(rows, source=source, default_time=default_time)


def parse_csv(text: str, *, source: str, default_time: datetime) -> list[Quote]:
    """A header ``base,quote,price[,observed_at]`` and one quote per line."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"base", "quote", "price"} <= set(reader.fieldnames):
        raise ValidationError(f"{source}: CSV needs the columns base,quote,price[,observed_at]")
    return parse_rows(list(reader), source=source, default_time=default_time)


@dataclass
class FileSource:
    """Quotes from a JSON or CSV file. A quote without ``observed_at`` is as
    old as the file (its modification time), so an abandoned file goes stale."""

    path: Path
    name: str = "file"

    def fetch(self, now: datetime) -> list[Quote]:  # noqa: ARG002
        try:
            st = self.path.stat()
            if st.st_size > MAX_FILE_BYTES:
                raise PriceSourceError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes")
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PriceSourceError(f"{self.path}: {exc.strerror}") from None
        mtime = datetime.fromtimestamp(st.st_mtime, UTC)
        parse = parse_csv if self.path.suffix.lower() == ".csv" else parse_json
        try:
            return parse(text, source=self.name, default_time=mtime)
        except ValidationError as exc:
            raise PriceSourceError(exc.message) from None


@dataclass
class StaticSource:
    """Fixed prices from the configuration, stamped ``now``: never stale."""

    prices: dict[str, Decimal]
    name: str = "static"

    def fetch(self, now: datetime) -> list[Quote]:
        out = []
        for key, price in self.prices.items():
            base, _, quote = key.partition("/")
            out.append(
                Quote(
                    source=self.name,
                    base=_symbol(base, self.name, 16),
                    quote=_symbol(quote, self.name, 8),
                    price=_decimal(price, self.name),
                    observed_at=now,
                )
            )
        return out


def _file(cfg: PriceSourceSettings, settings: Settings) -> PriceSource:
    return FileSource(
        path=cfg.path if cfg.path is not None else settings.data_dir / "prices.json",
        name=cfg.name or "file",
    )


def _static(cfg: PriceSourceSettings, settings: Settings) -> PriceSource:  # noqa: ARG001
    return StaticSource(prices=dict(cfg.prices), name=cfg.name or "static")


SOURCES: dict[str, Callable[[PriceSourceSettings, Settings], PriceSource]] = {
    "file": _file,
    "static": _static,
}


def make_sources(settings: Settings) -> list[PriceSource]:
    return [SOURCES[cfg.kind](cfg, settings) for cfg in settings.market.price_sources]


# --- stored quotes and the index -----------------------------------------


def store_quotes(session: Session, quotes: Iterable[Quote], *, now: datetime) -> int:
    """Keep each (source, base, quote)'s latest quote; an older one than the
    stored one is ignored. Returns how many rows changed."""
    changed = 0
    for q in quotes:
        row = session.scalar(
            select(PriceQuote).where(
                PriceQuote.source == q.source,
                PriceQuote.base == q.base,
                PriceQuote.quote == q.quote,
            )
        )
        if row is None:
            session.add(
                PriceQuote(
                    source=q.source,
                    base=q.base,
                    quote=q.quote,
                    price=q.price,
                    observed_at=q.observed_at,
                    fetched_at=now,
                )
            )
            changed += 1
        elif q.observed_at >= row.observed_at:
            row.price = q.price
            row.observed_at = q.observed_at
            row.fetched_at = now
            changed += 1
    session.flush()
    return changed


def fetch_all(sources: Iterable[PriceSource], *, now: datetime) -> list[Quote]:
    """Every source's quotes; a failing source is logged and skipped (its
    stored quotes age until they go stale)."""
    quotes: list[Quote] = []
    for src in sources:
        try:
            quotes.extend(src.fetch(now))
        except (PriceSourceError, ValidationError) as exc:
            log.warning("price source %s failed: %s", src.name, exc.message)
    return quotes


def _as_quote(r: PriceQuote) -> Quote:
    return Quote(
        source=r.source, base=r.base, quote=r.quote, price=r.price, observed_at=r.observed_at
    )


def stored_quotes(
    session: Session, *, base: str | None = None, quote: str | None = None
) -> list[Quote]:
    q = select(PriceQuote)
    if base is not None:
        q = q.where(PriceQuote.base == base.upper())
    if quote is not None:
        q = q.where(PriceQuote.quote == quote.upper())
    return [_as_quote(r) for r in session.scalars(q.order_by(PriceQuote.id))]


def current_index(
    session: Session, *, base: str, quote: str, now: datetime, max_age_s: int
) -> IndexPrice:
    """The index of base/quote now; PriceUnavailableError / PriceStaleError."""
    b, q = pair(base, quote)
    return index_of(
        stored_quotes(session, base=b, quote=q), base=b, quote=q, now=now, max_age_s=max_age_s
    )


def all_indexes(
    session: Session, *, now: datetime, max_age_s: int
) -> list[tuple[tuple[str, str], IndexPrice | EscrowdError]]:
    """Every quoted pair with its index, or the error saying why it has none."""
    quotes = stored_quotes(session)
    out: list[tuple[tuple[str, str], IndexPrice | EscrowdError]] = []
    for p in sorted({(x.base, x.quote) for x in quotes}):
        try:
            out.append((p, index_of(quotes, base=p[0], quote=p[1], now=now, max_age_s=max_age_s)))
        except EscrowdError as exc:
            out.append((p, exc))
    return out


def fresh_rates(
    session: Session, *, now: datetime, max_age_s: int
) -> dict[tuple[str, str], Decimal]:
    return {
        p: ix.price
        for p, ix in all_indexes(session, now=now, max_age_s=max_age_s)
        if isinstance(ix, IndexPrice)
    }


def refresh_prices(
    session: Session, *, sources: Iterable[PriceSource], now: datetime, settings: Settings
) -> int:
    """One refresh: fetch every source, store the quotes, then bring the
    seed's ``crypto_currencies.price`` (in ``market.limits_fiat``) and the
    shown price of active margin ads up to the index."""
    from node.market.opening import reprice_margin_ads  # the ads side of pricing

    changed = store_quotes(session, fetch_all(sources, now=now), now=now)
    max_age = settings.market.price_max_age_s
    fiat = settings.market.limits_fiat
    rates = fresh_rates(session, now=now, max_age_s=max_age)
    for cur in session.scalars(select(CryptoCurrency).where(CryptoCurrency.is_active.is_(True))):
        price = rates.get((cur.symbol.upper(), fiat))
        cur.price = price.quantize(Decimal("0.00000001")) if price is not None else None
    reprice_margin_ads(session, now=now, max_age_s=max_age)
    return changed
