"""Payment methods on a real node (PostgreSQL): CRUD by their owner only,
account details stored as ciphertext, shown in clear to the counterparty of
an active trade (audited) and to nobody else; bad input is a 4xx problem."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from node.db.session import transaction
from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.test_api_p2p_orders import match, post_ad

PROBLEM = "application/problem+json"
URL = "/api/p2p-crypto/payment-methods"
IBAN = "DE89370400440532013000"


def add(api: Api, who: str, **over: Any) -> Any:
    body = {
        "payment_type": "bank_transfer",
        "name": "SEPA",
        "payment_provider": "Sparkasse",
        "account_name": "Erika Mustermann",
        "account_number": IBAN,
        "bank_name": "Commerzbank",
        "country_code": "de",
        "details": {"bic": "COBADEFFXXX", "reference": "use trade id"},
    }
    body.update(over)
    return api.post(URL, who, json=body)


def test_owner_crud_and_details_encrypted_at_rest(api: Api) -> None:
    r = add(api, "seller")
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["account_number"] == IBAN and m["account_name"] == "Erika Mustermann"
    assert m["details"]["bic"] == "COBADEFFXXX" and m["revealed"] is True
    assert m["account_number_last4"] == "3000" and m["country_code"] == "DE"
    assert m["is_default"] is True  # the first method

    with transaction(api.node.sessions) as s:
        row = s.execute(
            text(
                "SELECT account_number, account_name, payment_details "
                "FROM p2p_crypto_payment_methods WHERE id = :id"
            ),
            {"id": m["id"]},
        ).one()
    for column in row:
        assert column.startswith("v1.")
        assert IBAN not in column and "Erika" not in column and "COBADE" not in column

    second = add(api, "seller", name="Revolut", payment_type="other", is_default=True).json()
    listed = api.get(URL, "seller").json()
    assert [x["id"] for x in listed] == [m["id"], second["id"]]
    assert [x["is_default"] for x in listed] == [False, True]

    r = api.client.put(
        f"{URL}/{m['id']}",
        headers=api.auth("seller"),
        json={"account_number": "DE02120300000000202051", "bank_name": None},
    )
    assert r.status_code == 200, r.text
    assert r.json()["account_number_last4"] == "2051" and r.json()["bank_name"] is None
    assert r.json()["account_name"] == "Erika Mustermann"  # untouched

    assert api.delete(f"{URL}/{m['id']}", "seller").status_code == 204
    assert [x["id"] for x in api.get(URL, "seller").json()] == [second["id"]]
    assert api.delete(f"{URL}/{m['id']}", "seller").status_code == 404


def test_other_users_and_nobody_get_nothing(api: Api) -> None:
    m = add(api, "seller").json()
    assert api.get(URL).status_code == 401
    assert api.post(URL, json={"payment_type": "other", "name": "x"}).status_code == 401
    assert api.get(URL, "buyer").json() == []
    for method, kw in (("put", {"json": {"name": "mine"}}), ("delete", {})):
        r = getattr(api.client, method)(f"{URL}/{m['id']}", headers=api.auth("buyer"), **kw)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == "not_found"
    assert api.get(URL, "seller").json()[0]["name"] == "SEPA"


def test_bad_input_is_a_422_problem(api: Api) -> None:
    for over, field in (
        ({"payment_type": "carrier_pigeon"}, "payment_type"),
        ({"country_code": "DEU"}, "country_code"),
        ({"name": ""}, "name"),
        ({"details": {"k" * 65: "v"}}, "details"),
        ({"surprise": 1}, "surprise"),
    ):
        r = add(api, "seller", **over)
        assert r.status_code == 422, (over, r.text)
        assert r.headers["content-type"] == PROBLEM and field in r.text
    m = add(api, "seller").json()
    r = api.client.put(f"{URL}/{m['id']}", headers=api.auth("seller"), json={"name": None})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    r = api.client.put(f"{URL}/{2**31}", headers=api.auth("seller"), json={})
    assert r.status_code == 422


def test_counterparty_of_an_active_trade_sees_details_and_it_is_audited(api: Api) -> None:
    sepa = add(api, "seller").json()
    add(
        api,
        "seller",
        name="PayPal",
        payment_type="paypal",
        payment_provider=None,
        account_number="erika@example.com",
        details={},
    )
    add(
        api,
        "buyer",
        name="SEPA",
        account_name="Max Buyer",
        account_number="FR7630006000011234567890189",
    )
    ad = post_ad(api, payment_methods=["SEPA"]).json()
    trade = match(api, ad["id"]).json()["order"]
    url = f"/api/p2p-crypto/orders/{trade['id']}/payment-details"

    r = api.get(url, "buyer")
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["counterparty_id"] == trade["seller_id"]
    # only the method the trade names; the PayPal account stays hidden
    assert [m["id"] for m in shown["payment_methods"]] == [sepa["id"]]
    assert shown["payment_methods"][0]["account_number"] == IBAN

    seller_view = api.get(url, "seller").json()
    assert seller_view["payment_methods"][0]["account_name"] == "Max Buyer"

    assert api.get(url, "outsider").status_code == 404
    assert api.get(url, "arbitrator").status_code == 404  # not a party: details stay private
    assert api.get(url).status_code == 401
    assert (
        api.get(f"/api/p2p-crypto/orders/{ad['id']}/payment-details", "buyer").status_code == 409
    )  # an ad, not a trade

    from node.db.models_accounts import AuditLog

    with transaction(api.node.sessions) as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.action == "payment_details.shown").order_by(AuditLog.id)
        ).all()
        assert [(r.subject, r.details["owner_id"]) for r in rows] == [
            (f"trade:{trade['id']}", trade["seller_id"]),
            (f"trade:{trade['id']}", trade["buyer_id"]),
        ]

    # while the trade is active the seller cannot take the method away
    r = api.delete(f"{URL}/{sepa['id']}", "seller")
    assert r.status_code == 409 and r.json()["code"] == "payment_method_in_use"
    r = api.client.put(f"{URL}/{sepa['id']}", headers=api.auth("seller"), json={"is_active": False})
    assert r.status_code == 409
    assert (
        api.client.put(
            f"{URL}/{sepa['id']}", headers=api.auth("seller"), json={"bank_name": "N26"}
        ).status_code
        == 200
    )

    # once the trade ends, nobody sees the details any more
    assert api.delete(f"/api/p2p-crypto/orders/{trade['id']}", "buyer").status_code == 200
    r = api.get(url, "buyer")
    assert r.status_code == 403 and r.json()["code"] == "trade_not_active"
    assert api.delete(f"{URL}/{sepa['id']}", "seller").status_code == 204
