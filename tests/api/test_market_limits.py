"""Trade limits per verification level on a real node: checked for both
parties when a trade opens, per trade and over 24 hours (trades that never
moved money do not count), valued in the limits currency through the index,
and raised by verification."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.market_fixtures import quote, verify, write_prices
from tests.api.test_api_p2p_orders import match, post_ad

ETH = 10**18


def limits_on(api: Api) -> None:
    api.node.settings.market.trade_limits_enabled = True


def refused(r: Any, limit: str, party: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["code"] == "trade_limit_exceeded"
    assert (body["limit"], body["party"]) == (limit, party), body


def test_per_trade_and_24h_limits_of_unverified_users(market_api: Api) -> None:
    api = market_api
    limits_on(api)
    # unverified: 500 USD per trade, 1000 USD per 24 h (the defaults)
    ad = post_ad(api, fiat_currency="USD", price_per_unit="1000", min_amount=str(ETH // 10)).json()
    refused(match(api, ad["id"], 6 * ETH // 10), "per_trade", "buyer")
    first = match(api, ad["id"], 4 * ETH // 10)
    assert first.status_code == 201, first.text
    assert match(api, ad["id"], 4 * ETH // 10).status_code == 201
    refused(match(api, ad["id"], 4 * ETH // 10), "per_24h", "buyer")
    st = api.get("/api/p2p-crypto/verification-status", "buyer").json()
    assert st["limits"] == {
        "fiat": "USD",
        "per_trade": "500",
        "per_24h": "1000",
        "used_24h": "800.00",
        "enforced": True,
    }
    # a trade cancelled before funding moved no money: its amount is free again
    cancelled = first.json()["order"]["id"]
    assert api.delete(f"/api/p2p-crypto/orders/{cancelled}", "buyer").status_code == 200
    assert match(api, ad["id"], 2 * ETH // 10).status_code == 201


def test_verification_raises_the_limits_of_each_party(market_api: Api) -> None:
    api = market_api
    limits_on(api)
    ad = post_ad(api, fiat_currency="USD", price_per_unit="3000").json()
    verify(api, "buyer", "basic")
    # the buyer may now, but the seller is still unverified
    refused(match(api, ad["id"], 6 * ETH // 10), "per_trade", "seller")
    verify(api, "seller", "basic")
    assert match(api, ad["id"], 6 * ETH // 10).status_code == 201
    refused(match(api, ad["id"], 2 * ETH), "per_trade", "buyer")  # 6000 > basic 5000


def test_other_currencies_are_valued_through_the_index(market_api: Api) -> None:
    api = market_api
    limits_on(api)
    # 0.6 ETH is 60 EUR at this ad's price, but 600 USD at the index
    write_prices(api, [quote("ETH", "USD", "1000")])
    ad = post_ad(api, fiat_currency="EUR", price_per_unit="100").json()
    refused(match(api, ad["id"], 6 * ETH // 10), "per_trade", "buyer")
    assert match(api, ad["id"], 3 * ETH // 10).status_code == 201


def test_limits_off_and_defaults(market_api: Api) -> None:
    api = market_api  # the shared fixture switches limits off
    ad = post_ad(api, fiat_currency="USD", price_per_unit="1000").json()
    assert match(api, ad["id"], 2 * ETH).status_code == 201
    st = api.get("/api/p2p-crypto/verification-status", "buyer").json()
    assert st["limits"]["enforced"] is False and st["limits"]["used_24h"] == "2000.00"
