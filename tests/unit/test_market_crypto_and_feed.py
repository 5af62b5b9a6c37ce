"""Payment-details encryption (AES-GCM bound to the owner, key rotation, the
dev key made once 0600, production refusing to run without a key) and the
price sources (JSON/CSV files, file age as quote age, static prices, bad
files refused with a reason)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from node.config import load_settings
from node.errors import ConfigError, ValidationError
from node.market.crypto import (
    KEY_FILE,
    DecryptionError,
    DetailsCipher,
    PaymentKeyMissingError,
    load_cipher,
    new_key,
)
from node.market.prices import (
    FileSource,
    PriceSourceError,
    StaticSource,
    fetch_all,
    make_sources,
    parse_csv,
    parse_json,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
K1, K2 = os.urandom(32), os.urandom(32)


def test_roundtrip_and_binding_to_the_owner() -> None:
    c = DetailsCipher(K1)
    token = c.encrypt("DE89 3704 0044 0532 0130 00", owner_id=7)
    assert "DE89" not in token and token != c.encrypt("DE89 3704 0044 0532 0130 00", owner_id=7)
    assert c.decrypt(token, owner_id=7) == "DE89 3704 0044 0532 0130 00"
    with pytest.raises(DecryptionError):  # copied onto another user's row
        c.decrypt(token, owner_id=8)
    head, _, blob = token.rpartition(".")
    flipped = head + "." + ("A" if blob[0] != "A" else "B") + blob[1:]
    with pytest.raises(DecryptionError):
        c.decrypt(flipped, owner_id=7)
    with pytest.raises(DecryptionError):
        c.decrypt("not a token", owner_id=7)


def test_rotation_old_keys_still_decrypt() -> None:
    old = DetailsCipher(K1).encrypt("x", owner_id=1)
    assert DetailsCipher(K2, (K1,)).decrypt(old, owner_id=1) == "x"
    with pytest.raises(DecryptionError, match="payment_old_keys"):
        DetailsCipher(K2).decrypt(old, owner_id=1)


def test_load_cipher_dev_prod_and_bad_keys(tmp_path: Path) -> None:
    dev = load_settings(data_dir=tmp_path)
    token = load_cipher(dev).encrypt("secret", owner_id=1)
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_cipher(dev).decrypt(token, owner_id=1) == "secret"  # same key next start

    prod = {
        "mode": "production",
        "data_dir": tmp_path / "p",
        "database_url": "sqlite:///x.db",
        "evm": {"enabled": False},
    }
    with pytest.raises(PaymentKeyMissingError, match="ESCROWD_MARKET__PAYMENT_KEY") as exc:
        load_cipher(load_settings(**prod))
    assert exc.value.http_status == 503
    assert not (tmp_path / "p" / KEY_FILE).exists()
    key = new_key()
    ok = load_cipher(load_settings(**prod, market={"payment_key": key}))
    assert ok.decrypt(ok.encrypt("y", owner_id=2), owner_id=2) == "y"
    with pytest.raises(ConfigError, match="payment_key"):
        load_cipher(load_settings(**prod, market={"payment_key": "c2hvcnQ="}))


def test_parse_json_and_csv() -> None:
    doc = (
        '{"quotes": [{"base": "eth", "quote": "eur", "price": "3000.5",'
        ' "observed_at": "2026-11-30T11:59:00Z"}, {"base": "BTC", "quote": "USD", "price": 90000}]}'
    )
    got = parse_json(doc, source="f", default_time=NOW)
    assert [(x.base, x.quote, x.price) for x in got] == [
        ("ETH", "EUR", Decimal("3000.5")),
        ("BTC", "USD", Decimal(90000)),
    ]
    assert got[0].observed_at == NOW - timedelta(minutes=1) and got[1].observed_at == NOW
    csv = "base,quote,price,observed_at\nSOL,EUR,150.25,\nEUR,USD,1.08,2026-11-30T11:00:00+00:00\n"
    assert [x.price for x in parse_csv(csv, source="c", default_time=NOW)] == [
        Decimal("150.25"),
        Decimal("1.08"),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        "{",
        '{"quotes": 3}',
        '[{"base": "ETH", "quote": "EUR", "price": "-1"}]',
        '[{"base": "ETH", "quote": "EUR", "price": "NaN"}]',
        '[{"base": "ETH", "quote": "EUR", "price": "1", "observed_at": "yesterday"}]',
        '[{"base": "ETH", "quote": "EUR", "price": "1", "observed_at": "2026-11-30T11:00:00"}]',
        '[{"base": "../x", "quote": "EUR", "price": "1"}]',
        "[1]",
    ],
)
def test_bad_quote_files_are_refused(doc: str) -> None:
    with pytest.raises(ValidationError):
        parse_json(doc, source="f", default_time=NOW)


def test_file_source_ages_with_the_file_and_failures_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    assert FileSource(path).fetch(NOW) == []  # no file yet: no quotes
    path.write_text('[{"base": "ETH", "quote": "EUR", "price": "3000"}]', encoding="utf-8")
    hour_ago = (NOW - timedelta(hours=1)).timestamp()
    os.utime(path, (hour_ago, hour_ago))
    assert FileSource(path).fetch(NOW)[0].observed_at == NOW - timedelta(hours=1)
    broken = tmp_path / "broken.csv"
    broken.write_text("what,ever\n1,2\n", encoding="utf-8")
    with pytest.raises(PriceSourceError):
        FileSource(broken).fetch(NOW)
    static = StaticSource({"ETH/USD": Decimal(3300)})
    got = fetch_all([FileSource(broken), static], now=NOW)
    assert [(x.source, x.base, x.quote, x.observed_at) for x in got] == [
        ("static", "ETH", "USD", NOW)
    ]


def test_sources_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        market={
            "price_sources": [
                {"kind": "file"},
                {"kind": "file", "name": "csv", "path": str(tmp_path / "p.csv")},
                {"kind": "static", "prices": {"ETH/EUR": "3000"}},
            ]
        },
    )
    srcs = make_sources(settings)
    assert [s.name for s in srcs] == ["file", "csv", "static"]
    assert isinstance(srcs[0], FileSource) and srcs[0].path == tmp_path / "prices.json"
