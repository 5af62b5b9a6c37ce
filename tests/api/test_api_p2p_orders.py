"""The seed's P2P endpoints on a real node (anvil + PostgreSQL): ads, matching,
funding from the seller's own wallet exactly as the API instructs, and the
trade turning funded only once the chain confirms it. Bad input and wrong
callers get 4xx problem+json, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def eth_id(api: Api) -> int:
    cur = api.get("/api/p2p-crypto/currencies").json()
    return int(next(c["id"] for c in cur if c["symbol"] == "ETH"))


def post_ad(api: Api, **over: Any) -> Any:
    body = {
        "crypto_currency_id": eth_id(api),
        "amount": str(3 * 10**18),
        "min_amount": str(10**17),
        "max_amount": str(2 * 10**18),
        "price_per_unit": "3150.5",
        "fiat_currency": "EUR",
        "payment_methods": ["SEPA", "Revolut"],
        "seller_address": api.chain.seller.address,
    }
    body.update(over)
    return api.post("/api/p2p-crypto/orders", "seller", json=body)


def fund(api: Api, funding: dict[str, Any]) -> None:
    """The seller's own wallet sends the transactions the API returned."""
    w3 = api.chain.w3
    for step in funding["transactions"]:
        tx = {"to": step["to"], "data": step["data"], "value": int(step["value"]),
              "chainId": step["chainId"], "from": step["from"],
              "nonce": w3.eth.get_transaction_count(step["from"])}
        tx["gas"] = w3.eth.estimate_gas(tx) * 2
        tx["maxFeePerGas"] = w3.eth.get_block("latest")["baseFeePerGas"] * 2 + 10**9
        tx["maxPriorityFeePerGas"] = 10**9
        signed = w3.eth.account.sign_transaction(tx, api.chain.seller.key)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction))
        assert receipt["status"] == 1


def match(api: Api, ad_id: int, amount: int = 10**18) -> Any:
    return api.post(f"/api/p2p-crypto/orders/{ad_id}/match", "buyer",
                    json={"amount": str(amount), "buyer_address": api.chain.buyer.address})


def test_currencies_list_the_chain_assets(api: Api) -> None:
    symbols = {c["symbol"] for c in api.get("/api/p2p-crypto/currencies").json()}
    assert {"ETH", "TUSD", "USDT"} <= symbols


def test_ad_lifecycle_and_listing(api: Api) -> None:
    r = post_ad(api)
    assert r.status_code == 201, r.text
    ad = r.json()
    assert ad["kind"] == "ad" and ad["status"] == "active" and ad["amount"] == str(3 * 10**18)
    listed = api.get("/api/p2p-crypto/orders", params={"fiat_currency": "eur"}).json()
    assert [o["id"] for o in listed["data"]] == [ad["id"]] and listed["total"] == 1
    assert api.get("/api/p2p-crypto/orders", params={"fiat_currency": "USD"}).json()["total"] == 0
    mine = api.get("/api/p2p-crypto/orders/my", "seller").json()
    assert [o["id"] for o in mine["data"]] == [ad["id"]]
    assert api.get("/api/p2p-crypto/orders/my", "buyer").json()["total"] == 0
    # only the seller cancels it
    assert api.delete(f"/api/p2p-crypto/orders/{ad['id']}", "buyer").status_code == 404
    r = api.delete(f"/api/p2p-crypto/orders/{ad['id']}", "seller")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert api.get("/api/p2p-crypto/orders").json()["total"] == 0
    r = api.delete(f"/api/p2p-crypto/orders/{ad['id']}", "seller")
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "over,field",
    [
        ({"amount": "-5"}, "amount"),
        ({"amount": "1.5"}, "amount"),
        ({"amount": 2**256}, "amount"),
        ({"min_amount": str(4 * 10**18)}, "min_amount"),
        ({"price_per_unit": "0"}, "price_per_unit"),
        ({"fiat_currency": "E1"}, "fiat_currency"),
        ({"payment_methods": []}, "payment_methods"),
        ({"seller_address": "0x1234"}, "seller_address"),
        ({"seller_address": "0x" + "00" * 20}, "seller_address"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_ads_are_422_problems(api: Api, over: dict[str, Any], field: str) -> None:
    r = post_ad(api, **over)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == 422 and body["code"] == "invalid_input"
    assert field in r.text


def test_auth_is_required_and_checked(api: Api) -> None:
    body = {"crypto_currency_id": 1}
    r = api.client.post("/api/p2p-crypto/orders", json=body)
    assert r.status_code in (401, 422)
    r = api.client.get("/api/p2p-crypto/orders/my")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    r = api.client.get("/api/p2p-crypto/orders/my", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def test_unknown_things_are_404_problems(api: Api) -> None:
    r = post_ad(api, crypto_currency_id=999)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert api.get("/api/p2p-crypto/orders/424242", "buyer").status_code == 404
    assert api.post("/api/p2p-crypto/orders/424242/match", "buyer",
                    json={"amount": "1", "buyer_address": api.chain.buyer.address}
                    ).status_code == 404
    assert api.get("/api/nothing-here").json()["code"] == "not_found"
    for bad in ("99999999999999999999", "0", "-1", "abc"):
        r = api.get(f"/api/p2p-crypto/orders/{bad}", "buyer")
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (bad, r.text)
    r = api.post("/api/p2p-crypto/disputes/99999999999/resolve", "arbitrator",
                 json={"buyer_bps": 1})
    assert r.status_code == 422


def test_match_rules(api: Api) -> None:
    ad = post_ad(api).json()
    r = api.post(f"/api/p2p-crypto/orders/{ad['id']}/match", "seller",
                 json={"amount": str(10**18), "buyer_address": api.chain.buyer.address})
    assert r.status_code == 403 and r.json()["code"] == "own_ad"
    assert match(api, ad["id"], 10**16).status_code == 422  # below min
    assert match(api, ad["id"], 3 * 10**18).status_code == 422  # above max
    r = api.post(f"/api/p2p-crypto/orders/{ad['id']}/match", "buyer",
                 json={"amount": str(10**18), "buyer_address": api.chain.seller.address})
    assert r.status_code == 422  # buyer address = seller address: not a real escrow
    assert match(api, ad["id"], 2 * 10**18).status_code == 201
    assert match(api, ad["id"], 10**18).status_code == 201
    r = match(api, ad["id"], 10**18)  # only 0 left
    assert r.status_code in (409, 422)
    listed = api.get("/api/p2p-crypto/orders").json()
    assert listed["total"] == 0  # the ad is completed


def test_trade_is_funded_only_after_the_chain_confirms(api: Api) -> None:
    ad = post_ad(api).json()
    r = match(api, ad["id"])
    assert r.status_code == 201, r.text
    opened = r.json()
    trade, funding = opened["order"], opened["funding"]
    assert trade["status"] == "awaiting_funding" and trade["kind"] == "trade"
    assert funding["contract"] == api.chain.deployment.escrow
    assert funding["escrow_id"] == trade["escrow"]["escrow_id"]
    assert [s["step"] for s in funding["transactions"]] == ["open"]
    # the escrow id is the contract's own
    onchain = api.chain.escrow_id(api.chain.seller.address, bytes.fromhex(funding["ref"][2:]))
    assert onchain == funding["escrow_id"]
    # others cannot see the trade; the parties and the arbitrator can
    assert api.get(f"/api/p2p-crypto/orders/{trade['id']}", "outsider").status_code == 404
    assert api.get(f"/api/p2p-crypto/orders/{trade['id']}", "arbitrator").status_code == 200

    fund(api, funding)
    api.sync()
    got = api.get(f"/api/p2p-crypto/orders/{trade['id']}", "seller").json()
    assert got["status"] == "funded", got
    assert got["escrow"]["funded_amount"] == str(10**18)
    assert got["escrow"]["funded_tx"]


def test_token_funding_needs_approve_then_open(api: Api) -> None:
    cur = api.get("/api/p2p-crypto/currencies").json()
    usdt = next(c for c in cur if c["symbol"] == "USDT")
    ad = post_ad(api, crypto_currency_id=usdt["id"], amount="5000000000",
                 min_amount="1000000", max_amount="5000000000").json()
    opened = match(api, ad["id"], 250_000_000).json()
    steps = opened["funding"]["transactions"]
    assert [s["step"] for s in steps] == ["approve", "open"]
    assert steps[0]["to"] == usdt["contract_address"]
    fund(api, opened["funding"])
    api.sync()
    got = api.get(f"/api/p2p-crypto/orders/{opened['order']['id']}", "buyer").json()
    assert got["status"] == "funded" and got["escrow"]["token_address"] == usdt["contract_address"]


def test_unfunded_trade_can_be_cancelled_and_gives_the_amount_back(api: Api) -> None:
    ad = post_ad(api).json()
    trade = match(api, ad["id"], 2 * 10**18).json()["order"]
    assert api.delete(f"/api/p2p-crypto/orders/{trade['id']}", "outsider").status_code == 404
    r = api.delete(f"/api/p2p-crypto/orders/{trade['id']}", "buyer")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    ads = api.get("/api/p2p-crypto/orders").json()["data"]
    assert ads[0]["remaining_amount"] == str(3 * 10**18)


def sign(api: Api, who: str, payload: dict[str, Any]) -> str:
    from node.evm_trades import sign_typed_data

    key = {"seller": api.chain.seller.key, "buyer": api.chain.buyer.key,
           "outsider": api.chain.accounts[5].key}[who]
    return sign_typed_data(key, payload)


def act(api: Api, trade_id: int, endpoint: str, who: str, **extra: Any) -> Any:
    url = f"/api/p2p-crypto/orders/{trade_id}/{endpoint}"
    r = api.post(url, who, json=extra)
    assert r.status_code in (200, 201), r.text
    req = r.json()
    req = req.get("chain", req)  # /dispute answers with the dispute and its chain part
    assert req["status"] == "signature_required"
    r = api.post(url, who, json={**extra, "signature": sign(api, who, req["payload"]),
                                 "expiry": req["expiry"]})
    assert r.status_code in (201, 202), r.text
    return r.json()


def funded_trade(api: Api, amount: int = 10**18) -> int:
    ad = post_ad(api).json()
    opened = match(api, ad["id"], amount).json()
    fund(api, opened["funding"])
    api.sync()
    return int(opened["order"]["id"])


def status(api: Api, trade_id: int) -> Any:
    return api.get(f"/api/p2p-crypto/orders/{trade_id}", "buyer").json()


def test_paid_and_released_through_relayed_signatures(api: Api) -> None:
    t = funded_trade(api)
    buyer_before = api.chain.w3.eth.get_balance(api.chain.buyer.address)
    act(api, t, "payment", "buyer")
    api.sync()
    assert status(api, t)["status"] == "paid"
    act(api, t, "release-escrow", "seller")
    api.sync()
    got = status(api, t)
    assert got["status"] == "completed" and got["escrow"]["payout_tx"]
    fee = 10**18 * 50 // 10_000
    assert api.chain.w3.eth.get_balance(api.chain.buyer.address) - buyer_before == 10**18 - fee


def test_wrong_party_and_wrong_state_are_refused(api: Api) -> None:
    t = funded_trade(api)
    r = api.post(f"/api/p2p-crypto/orders/{t}/release-escrow", "buyer", json={})
    assert r.status_code == 403 and r.json()["code"] == "wrong_party"
    r = api.post(f"/api/p2p-crypto/orders/{t}/payment", "seller", json={})
    assert r.status_code == 403
    r = api.post(f"/api/p2p-crypto/orders/{t}/payment", "outsider", json={})
    assert r.status_code == 404  # not a party: the trade does not exist for them
    # a signature by the wrong key is refused before anything is relayed
    req = api.post(f"/api/p2p-crypto/orders/{t}/payment", "buyer", json={}).json()
    r = api.post(f"/api/p2p-crypto/orders/{t}/payment", "buyer",
                 json={"signature": sign(api, "seller", req["payload"]), "expiry": req["expiry"]})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM, r.text
    r = api.post(f"/api/p2p-crypto/orders/{t}/payment", "buyer",
                 json={"signature": "0x1234", "expiry": req["expiry"]})
    assert r.status_code == 422
    # reclaiming before the payment window closed
    r = api.post(f"/api/p2p-crypto/orders/{t}/reclaim", "seller", json={})
    assert r.status_code == 409 and r.json()["code"] == "too_early"


def test_same_signed_instruction_twice_is_one_job(api: Api) -> None:
    t = funded_trade(api)
    url = f"/api/p2p-crypto/orders/{t}/payment"
    req = api.post(url, "buyer", json={}).json()
    body = {"signature": sign(api, "buyer", req["payload"]), "expiry": req["expiry"]}
    first = api.post(url, "buyer", json=body).json()
    second = api.post(url, "buyer", json=body).json()
    assert first["ref"] == second["ref"]
    api.sync()
    assert status(api, t)["status"] == "paid"


def test_dispute_ruled_by_the_arbitrator_splits_30_70(api: Api) -> None:
    t = funded_trade(api)
    act(api, t, "payment", "buyer")
    api.sync()
    body = {"dispute_type": "payment_not_received", "description": "no SEPA transfer"}
    out = act(api, t, "dispute", "buyer", **body)
    dispute_id = out["dispute"]["id"]
    api.sync()
    assert status(api, t)["status"] == "disputed"
    # only arbitrators rule
    r = api.post(f"/api/p2p-crypto/disputes/{dispute_id}/resolve", "buyer",
                 json={"buyer_bps": 10_000})
    assert r.status_code == 403
    listed = api.get("/api/p2p-crypto/disputes", "arbitrator", params={"status": "open"}).json()
    assert [d["id"] for d in listed] == [dispute_id]
    seller_before = api.chain.w3.eth.get_balance(api.chain.seller.address)
    r = api.post(f"/api/p2p-crypto/disputes/{dispute_id}/resolve", "arbitrator",
                 json={"buyer_bps": 3000, "resolution_notes": "partial"})
    assert r.status_code == 202, r.text
    api.sync()
    got = status(api, t)
    assert got["status"] == "resolved" and got["escrow"]["buyer_bps"] == 3000
    assert api.chain.w3.eth.get_balance(api.chain.seller.address) - seller_before == 7 * 10**17
    # a second, different ruling is refused (the first is final on chain and in the journal)
    r = api.post(f"/api/p2p-crypto/disputes/{dispute_id}/resolve", "arbitrator",
                 json={"buyer_bps": 10_000})
    assert r.status_code == 409


def test_buyer_cancels_a_funded_trade_and_the_seller_is_refunded(api: Api) -> None:
    t = funded_trade(api)
    seller_before = api.chain.w3.eth.get_balance(api.chain.seller.address)
    r = api.delete(f"/api/p2p-crypto/orders/{t}", "buyer")
    assert r.status_code == 409 and r.json()["code"] == "funded_trade"
    act(api, t, "cancel-escrow", "buyer")
    api.sync()
    assert status(api, t)["status"] == "refunded"
    assert api.chain.w3.eth.get_balance(api.chain.seller.address) - seller_before == 10**18
