"""The price feed on a real node: quotes from the file source become the
index (and the currencies' price), margin ads follow it and are priced again
when a trade opens (stored on the trade), and a stale or missing index
refuses margin ads with a 503 problem while fixed-price ads keep working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.market_fixtures import quote, write_prices
from tests.api.test_api_p2p_orders import match, post_ad

PROBLEM = "application/problem+json"


def margin_ad(api: Api, bps: int) -> Any:
    return post_ad(api, price_per_unit=None, price_type="margin", margin_bps=bps)


def test_margin_ads_follow_the_index_and_trades_keep_their_price(api: Api) -> None:
    assert api.get("/api/p2p-crypto/prices").json() == []
    r = margin_ad(api, 200)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "price_unavailable"

    write_prices(api, [quote("ETH", "EUR", "3000"), quote("ETH", "USD", "3300.5")])
    index = api.get("/api/p2p-crypto/prices", params={"quote": "eur"}).json()
    assert [(i["base"], i["quote"], i["price"], i["stale"]) for i in index] == [
        ("ETH", "EUR", "3000.000000000000", False)
    ]
    eth = next(c for c in api.get("/api/p2p-crypto/currencies").json() if c["symbol"] == "ETH")
    assert Decimal(eth["price"]) == Decimal("3300.5") and eth["price_currency"] == "USD"

    ad = margin_ad(api, 200).json()
    assert ad["price_type"] == "margin" and ad["margin_bps"] == 200
    assert Decimal(ad["price_per_unit"]) == Decimal("3060")

    # the index moves: the listing follows it, and the trade takes it at match time
    write_prices(api, [quote("ETH", "EUR", "3100")])
    listed = api.get("/api/p2p-crypto/orders").json()["data"]
    assert Decimal(listed[0]["price_per_unit"]) == Decimal("3162")
    write_prices(api, [quote("ETH", "EUR", "3200")], refresh=False)
    from node.market.service import refresh_prices

    refresh_prices(api.node)
    r = match(api, ad["id"], 10**18)
    assert r.status_code == 201, r.text
    trade = r.json()["order"]
    assert Decimal(trade["price_per_unit"]) == Decimal("3264")
    assert Decimal(trade["total_amount"]) == Decimal("3264")
    assert trade["price_type"] == "margin" and trade["margin_bps"] == 200

    # later index moves do not touch the open trade
    write_prices(api, [quote("ETH", "EUR", "1000")])
    got = api.get(f"/api/p2p-crypto/orders/{trade['id']}", "buyer").json()
    assert Decimal(got["price_per_unit"]) == Decimal("3264")


def test_stale_index_refuses_margin_ads_only(api: Api) -> None:
    write_prices(api, [quote("ETH", "EUR", "3000")])
    margin = margin_ad(api, -100).json()
    assert Decimal(margin["price_per_unit"]) == Decimal("2970")
    fixed = post_ad(api, price_per_unit="2500").json()
    assert fixed["price_type"] == "fixed" and fixed["margin_bps"] is None

    old = datetime.now(UTC) - timedelta(seconds=api.node.settings.market.price_max_age_s + 60)
    from node.db.models_market import PriceQuote
    from node.db.session import transaction

    with transaction(api.node.sessions) as s:  # the source went silent an hour ago
        for row in s.query(PriceQuote):
            row.observed_at = old
    index = api.get("/api/p2p-crypto/prices").json()
    assert index[0]["stale"] is True and index[0]["error"] == "price_stale"

    r = match(api, margin["id"], 10**18)
    assert r.status_code == 503 and r.json()["code"] == "price_stale"
    r = margin_ad(api, 100)
    assert r.json()["code"] == "price_stale"
    assert match(api, fixed["id"], 10**18).status_code == 201
    # nothing was reserved by the refused match
    ads = {a["id"]: a for a in api.get("/api/p2p-crypto/orders").json()["data"]}
    assert ads[margin["id"]]["remaining_amount"] == str(3 * 10**18)


def test_bad_pricing_input_is_a_422_problem(api: Api) -> None:
    write_prices(api, [quote("ETH", "EUR", "3000")])
    for over, code_field in (
        ({"price_per_unit": None}, "price_per_unit"),
        ({"price_type": "margin", "margin_bps": 100}, "price_per_unit"),
        ({"price_type": "margin", "price_per_unit": None}, "margin_bps"),
        ({"price_type": "margin", "price_per_unit": None, "margin_bps": 20_000}, "margin_bps"),
        ({"price_type": "margin", "price_per_unit": None, "margin_bps": -10_000}, "margin_bps"),
        ({"margin_bps": 100}, "margin_bps"),
        ({"price_type": "auction"}, "price_type"),
    ):
        r = post_ad(api, **over)
        assert r.status_code == 422, (over, r.text)
        assert code_field in r.text and r.headers["content-type"] == PROBLEM
    assert api.get("/api/p2p-crypto/orders").json()["total"] == 0


def test_a_broken_price_file_keeps_the_last_quotes(api: Api) -> None:
    write_prices(api, [quote("ETH", "EUR", "3000")])
    path = api.node.settings.data_dir / "prices.json"
    path.write_text("{not json", encoding="utf-8")
    from node.market.service import refresh_prices

    refresh_prices(api.node)  # logged, not raised
    assert api.get("/api/p2p-crypto/prices").json()[0]["price"] == "3000.000000000000"
