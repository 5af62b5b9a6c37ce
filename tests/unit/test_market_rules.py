"""Trade limits per level (per trade, rolling 24 h, unlimited levels) and the
opening policy from the settings (on in production, off in dev, a level left
out of the configuration keeps its default)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from node.config import load_settings
from node.errors import ConfigError
from node.market.errors import TradeLimitError
from node.market.limits import Limit, check_limit
from node.market.opening import OpeningPolicy

L = Limit(per_trade=Decimal(500), per_24h=Decimal(1000))


def test_within_limits_passes() -> None:
    check_limit(
        role="buyer",
        level="unverified",
        limit=L,
        value=Decimal(500),
        used_24h=Decimal(500),
        fiat="USD",
    )
    check_limit(
        role="buyer",
        level="trusted",
        limit=Limit(),
        value=Decimal(10**12),
        used_24h=Decimal(10**12),
        fiat="USD",
    )


@pytest.mark.parametrize(
    ("value", "used", "which"),
    [("500.01", "0", "per_trade"), ("400", "600.01", "per_24h"), ("1", "1000", "per_24h")],
)
def test_over_a_limit_is_refused_with_its_fields(value: str, used: str, which: str) -> None:
    with pytest.raises(TradeLimitError) as exc:
        check_limit(
            role="seller",
            level="basic",
            limit=L,
            value=Decimal(value),
            used_24h=Decimal(used),
            fiat="USD",
        )
    err = exc.value
    assert err.code == "trade_limit_exceeded" and err.http_status == 403
    assert err.fields["limit"] == which and err.fields["party"] == "seller"
    assert err.fields["level"] == "basic" and "USD" in err.message


def test_policy_from_settings(tmp_path: Path) -> None:
    dev = OpeningPolicy.from_settings(load_settings(data_dir=tmp_path))
    assert dev.limits_enabled is False
    prod = OpeningPolicy.from_settings(
        load_settings(
            mode="production",
            data_dir=tmp_path,
            database_url="sqlite:///x.db",
            evm={"enabled": False},
            market={"trade_limits": {"basic": {"per_trade": "10"}}, "limits_fiat": "EUR"},
        )
    )
    assert prod.limits_enabled is True and prod.limits_fiat == "EUR"
    assert prod.limits["basic"] == Limit(per_trade=Decimal(10), per_24h=None)
    assert prod.limits["unverified"].per_trade == Decimal(500)  # default kept
    assert prod.limits["trusted"].per_24h is None
    assert prod.unpriced_face_value is True
    strict = load_settings(data_dir=tmp_path, market={"limits_unpriced": "refuse"})
    assert OpeningPolicy.from_settings(strict).unpriced_face_value is False
    assert OpeningPolicy().limits_enabled is False  # direct callers: no limits


@pytest.mark.parametrize(
    "market",
    [
        {"trade_limits": {"gold": {"per_trade": "1"}}},
        {"trade_limits": {"basic": {"per_trade": "-1"}}},
        {"required_documents": {"basic": ["dna_sample"]}},
        {"limits_fiat": "usd"},
        {"price_sources": [{"kind": "ftp"}]},
    ],
)
def test_bad_market_settings_name_the_setting(market: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="market"):
        load_settings(market=market)
