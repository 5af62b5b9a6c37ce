"""Rate limits and Idempotency-Key over the real API: sign-in attempts above
the limit get 429 problem+json with Retry-After; the same Idempotency-Key
fired 10 times concurrently creates one ad and returns 10 identical
responses; the key with another body is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.api.auth_fixtures import *  # noqa: F403
from tests.api.auth_fixtures import AUTH, Api, register, strict_signin_limit
from tests.api.test_api_p2p_orders import eth_id

ORDERS = "/api/p2p-crypto/orders"


def test_sign_in_attempts_above_the_limit_are_429(auth_api: Api) -> None:
    strict_signin_limit(auth_api)  # the configured default: 10 per minute
    register(auth_api, "mallory-target")  # 1 sign-in request from this client
    codes = []
    for i in range(12):
        r = auth_api.client.post(f"{AUTH}/login",
                                 json={"username": "mallory-target", "password": f"guess-{i}xx"})
        codes.append(r.status_code)
    assert codes[:9] == [401] * 9, codes
    assert codes[9:] == [429] * 3, codes
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    # the limit is on sign-in: the rest of the API still answers this client
    assert auth_api.get("/api/p2p-crypto/currencies").status_code == 200


def _ad_body(api: Api, amount: int) -> dict[str, Any]:
    return {
        "crypto_currency_id": eth_id(api), "amount": str(amount), "price_per_unit": "3000",
        "fiat_currency": "EUR", "payment_methods": ["SEPA"],
        "seller_address": api.chain.seller.address,
    }


def test_same_idempotency_key_ten_times_concurrently(auth_api: Api) -> None:
    body = _ad_body(auth_api, 10**18)
    headers = auth_api.auth("seller") | {"Idempotency-Key": "create-ad-7f3a"}

    async def fire() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=auth_api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return list(await asyncio.gather(
                *(c.post(ORDERS, json=body, headers=headers) for _ in range(10))))

    responses = asyncio.run(fire())
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    mine = auth_api.get(f"{ORDERS}/my", "seller").json()
    assert mine["total"] == 1  # one side effect

    # later replays too; the same key with another body is refused
    r = auth_api.client.post(ORDERS, json=body, headers=headers)
    assert r.status_code == 201 and r.content == responses[0].content
    r = auth_api.client.post(ORDERS, json=_ad_body(auth_api, 2 * 10**18), headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
    # keys are per caller: the buyer's same key is a different request
    r = auth_api.client.post(ORDERS, json=body | {"seller_address": auth_api.chain.buyer.address},
                             headers=auth_api.auth("buyer") | {"Idempotency-Key": "create-ad-7f3a"})
    assert r.status_code == 201 and r.headers.get("idempotent-replayed") is None
    # a failed request's answer is replayed as well (4xx are answers, not crashes)
    bad = {"Idempotency-Key": "bad-ad-1"} | auth_api.auth("seller")
    first = auth_api.client.post(ORDERS, json=body | {"amount": "0"}, headers=bad)
    again = auth_api.client.post(ORDERS, json=body | {"amount": "0"}, headers=bad)
    assert first.status_code == 422 and again.content == first.content
    r = auth_api.client.post(ORDERS, json=body, headers=auth_api.auth("seller")
                             | {"Idempotency-Key": "x" * 300})
    assert r.status_code == 422 and r.json()["code"] == "invalid_idempotency_key"
    assert auth_api.get(f"{ORDERS}/my", "seller").json()["total"] == 1


def test_limits_per_client_behind_a_trusted_proxy(auth_api: Api) -> None:
    """Behind a trusted proxy each forwarded client has its own sign-in limit
    and is the IP the audit log records; a client's own X-Forwarded-For is
    not believed."""
    from api.app import create_app

    node = auth_api.node
    auth = node.settings.auth.model_copy(update={"trusted_proxies": ["10.0.0.0/8"],
                                                 "rate_limit_signin": "3/minute"})
    app = create_app(sessions=node.sessions, chains=node.chains,
                     settings=node.settings.model_copy(update={"auth": auth}))
    body = {"username": "nobody", "password": "wrong-password"}

    async def logins(peer: str, xff: str, n: int) -> list[int]:
        transport = httpx.ASGITransport(app=app, client=(peer, 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [(await c.post(f"{AUTH}/login", json=body | {"username": f"u{i}-{xff}"},
                                  headers={"X-Forwarded-For": xff})).status_code
                    for i in range(n)]

    assert asyncio.run(logins("10.0.0.2", "198.51.100.7", 4)) == [401, 401, 401, 429]
    assert asyncio.run(logins("10.0.0.2", "198.51.100.8", 1)) == [401]  # another client
    # an untrusted peer's header is ignored: it is limited as itself
    assert asyncio.run(logins("203.0.113.5", "198.51.100.9", 4)) == [401, 401, 401, 429]
    log = auth_api.get("/api/p2p-crypto/admin/audit-log", "admin",
                       params={"action": "auth.signin_failed", "limit": 100}).json()["data"]
    assert {e["ip"] for e in log} == {"198.51.100.7", "198.51.100.8", "203.0.113.5"}
