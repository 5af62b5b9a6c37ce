"""Gasless funding: the seller signs ``Open`` and the token's EIP-2612
``Permit`` in their own wallet and the node relays ``open_relayed``. The
coins come from the seller's address, the seller pays no gas, and a permit or
Open signed by anyone else is refused before it reaches the chain."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import match, post_ad, sign, status


def tusd_trade(api: Api, amount: int = 250 * 10**18) -> tuple[int, dict[str, Any]]:
    cur = api.get("/api/p2p-crypto/currencies").json()
    tusd = next(c for c in cur if c["symbol"] == "TUSD")
    ad = post_ad(api, crypto_currency_id=tusd["id"], amount=str(10**21),
                 min_amount=str(10**18), max_amount=str(10**21)).json()
    opened = match(api, ad["id"], amount).json()
    return int(opened["order"]["id"]), opened["funding"]


def test_seller_funds_without_paying_gas(api: Api) -> None:
    trade_id, funding = tusd_trade(api)
    relayed = funding["relayed"]
    assert relayed["permit"] is not None  # TUSD has EIP-2612
    w3 = api.chain.w3
    seller = api.chain.seller.address
    eth_before = w3.eth.get_balance(seller)
    token = api.chain.token("TUSD")
    tokens_before = token.functions.balanceOf(seller).call()
    body = {
        "open_signature": sign(api, "seller", relayed["open"]),
        "permit_signature": sign(api, "seller", relayed["permit"]),
        "expiry": relayed["expiry"],
    }
    r = api.post(f"/api/p2p-crypto/orders/{trade_id}/fund", "seller", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["action"] == "open"
    api.sync()
    assert status(api, trade_id)["status"] == "funded"
    assert w3.eth.get_balance(seller) == eth_before  # no gas from the seller
    assert tokens_before - token.functions.balanceOf(seller).call() == 250 * 10**18


def test_signatures_by_others_are_refused(api: Api) -> None:
    trade_id, funding = tusd_trade(api)
    relayed = funding["relayed"]
    url = f"/api/p2p-crypto/orders/{trade_id}/fund"
    forged = {
        "open_signature": sign(api, "buyer", relayed["open"]),
        "permit_signature": sign(api, "buyer", relayed["permit"]),
        "expiry": relayed["expiry"],
    }
    r = api.post(url, "seller", json=forged)
    assert r.status_code == 409 and r.json()["code"] == "relay_refused", r.text
    good = {**forged, "open_signature": sign(api, "seller", relayed["open"])}
    r = api.post(url, "seller", json=good)  # a good Open with someone else's permit
    assert r.status_code == 409
    r = api.post(url, "buyer", json=good)  # only the seller's account submits
    assert r.status_code == 403
    assert status(api, trade_id)["status"] == "awaiting_funding"


def test_native_coin_is_funded_by_the_sellers_own_transaction(api: Api) -> None:
    ad = post_ad(api).json()
    opened = match(api, ad["id"]).json()
    assert "relayed" not in opened["funding"]
    r = api.post(f"/api/p2p-crypto/orders/{opened['order']['id']}/fund", "seller",
                 json={"open_signature": "0x" + "11" * 65, "expiry": 1})
    assert r.status_code == 422 and r.json()["code"] == "relayed_funding_unsupported"
