"""Access control over every endpoint of the app, enumerated from its routes
so a new endpoint cannot be forgotten:

- every route not listed as public answers 401 problem+json without a token
  (and with a garbage one);
- every route on an object (a path id) answers 403 or 404 to a signed-in
  user who does not own the object: each such route names, in ``OBJECT_ROUTES``,
  the kind of object and a factory makes a real one owned by someone else,
  and the same real object's route answers 401 without a token.

The ownership test runs on a node with custody on (a seed file, as in
production: tests/api/custody_access_fixtures.py) so the custody routes
(withdrawals, the withdrawal allow-list) are exercised on real objects too.
A route missing from both tables, or whose kind has no factory, fails the
test: add one line for it (and a factory for a new kind of object)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from solders.keypair import Keypair

from tests.api.auth_fixtures import *  # noqa: F403
from tests.api.auth_fixtures import register, sol_body
from tests.api.conftest import Api
from tests.api.custody_access_fixtures import *  # noqa: F403
from tests.api.custody_access_fixtures import CustodyObjects
from tests.api.test_api_p2p_orders import act, funded_trade, match, post_ad

P = "/api/p2p-crypto"

# (method, path) anyone may call without signing in
PUBLIC: set[tuple[str, str]] = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", f"{P}/currencies"),
    ("GET", f"{P}/orders"),
    ("GET", f"{P}/prices"),
    ("GET", f"{P}/trading-pairs"),
    ("GET", f"{P}/trading-pairs/{{pair_id}}"),
    ("GET", f"{P}/trading-pairs/{{pair_id}}/orderbook"),
    ("GET", f"{P}/trading-pairs/{{pair_id}}/trades"),
    ("GET", f"{P}/users/{{user_id}}/profile"),
    ("POST", f"{P}/auth/register"),
    ("POST", f"{P}/auth/login"),
    ("POST", f"{P}/auth/refresh"),
    ("POST", f"{P}/auth/nonce"),
    ("POST", f"{P}/auth/wallet"),
}

# path template of a route on an object -> the kind of object (a factory below
# makes one owned by the seller or buyer; "user" is the seller's account,
# "admin" marks admin-only routes a trader is refused whatever the id)
OBJECT_ROUTES: dict[str, str] = {
    f"{P}/orders/{{order_id}}": "trade",
    f"{P}/orders/{{order_id}}/funding": "trade",
    f"{P}/orders/{{order_id}}/payment": "trade",
    f"{P}/orders/{{order_id}}/release-escrow": "trade",
    f"{P}/orders/{{order_id}}/cancel-escrow": "trade",
    f"{P}/orders/{{order_id}}/reclaim": "trade",
    f"{P}/orders/{{order_id}}/dispute": "trade",
    f"{P}/orders/{{order_id}}/fund": "trade",
    f"{P}/orders/{{order_id}}/payment-details": "trade",
    f"{P}/disputes/{{dispute_id}}": "dispute",
    f"{P}/disputes/{{dispute_id}}/assign": "dispute",
    f"{P}/disputes/{{dispute_id}}/evidence": "dispute",
    f"{P}/disputes/{{dispute_id}}/evidence/files": "dispute",
    f"{P}/disputes/{{dispute_id}}/evidence/{{evidence_id}}/file": "dispute",
    f"{P}/disputes/{{dispute_id}}/ruling-payload": "dispute",
    f"{P}/disputes/{{dispute_id}}/resolve": "dispute",
    "/api/btc/orders/{order_id}/escrow": "trade",
    "/api/btc/orders/{order_id}/payout": "trade",
    "/api/btc/orders/{order_id}/bump": "trade",
    "/api/btc/orders/{order_id}/timelock-refund": "trade",
    "/api/btc/orders/{order_id}/watchtower": "trade",
    "/api/btc/orders/{order_id}/fee-ladder": "trade",
    f"{P}/btc/orders/{{order_id}}/funding/bump": "trade",
    "/api/sol/orders/{order_id}/payout": "trade",
    f"{P}/auth/wallets/{{wallet_id}}": "wallet",
    f"{P}/auth/sessions/{{session_id}}": "auth_session",
    f"{P}/admin/users/{{user_id}}/role": "admin",
    f"{P}/admin/users/{{user_id}}/revoke-sessions": "admin",
    f"{P}/admin/users/{{user_id}}/verification-level": "admin",
    f"{P}/payment-methods/{{method_id}}": "payment_method",
    f"{P}/admin/verifications/{{user_id}}/review": "admin",
    f"{P}/admin/verification-documents/{{document_id}}": "admin",
    f"{P}/webhooks/{{webhook_id}}": "webhook",
    f"{P}/withdrawal-addresses/{{entry_id}}": "withdrawal_address",
    f"{P}/withdrawals/{{withdrawal_id}}": "withdrawal",
    f"{P}/withdrawals/{{withdrawal_id}}/cancel": "withdrawal",
    f"{P}/trading-orders/{{order_id}}": "trading_order",
    f"{P}/trading-orders/{{order_id}}/cancel": "trading_order",
}
# a valid body for object routes that take one, so the ownership check (not
# body validation) is what answers
BODIES: dict[str, dict[str, Any]] = {
    f"{P}/orders/{{order_id}}/dispute": {"dispute_type": "payment_not_received",
                                         "description": "none"},
    f"{P}/orders/{{order_id}}/fund": {"open_signature": "0x" + "11" * 65, "expiry": 2**40},
    f"{P}/disputes/{{dispute_id}}/assign": {"arbitrator_user_id": 1},
    f"{P}/disputes/{{dispute_id}}/evidence": {"text": "a screenshot"},
    f"{P}/disputes/{{dispute_id}}/resolve": {"buyer_bps": 10_000},
    f"{P}/disputes/{{dispute_id}}/ruling-payload": {"buyer_bps": 10_000},
    "/api/btc/orders/{order_id}/payout": {"psbt": "cHNidP8BAA=="},
    "/api/btc/orders/{order_id}/timelock-refund": {"psbt": "cHNidP8BAA=="},
    "/api/btc/orders/{order_id}/watchtower": {"psbt": "cHNidP8BAA=="},
    "/api/btc/orders/{order_id}/fee-ladder": {"psbts": ["cHNidP8BAA=="]},
    f"{P}/btc/orders/{{order_id}}/funding/bump": {"funding_txid": "ab" * 32},
    "/api/sol/orders/{order_id}/payout": {"payout_id": 1},
    f"{P}/admin/verifications/{{user_id}}/review": {"decision": "approve"},
    f"{P}/admin/users/{{user_id}}/role": {"role": "admin"},
    f"{P}/admin/users/{{user_id}}/verification-level": {"level": "trusted"},
    f"{P}/payment-methods/{{method_id}}": {"name": "mine now"},
    f"{P}/trading-orders/{{order_id}}": {"quantity": str(10**16)},
}
FILES: dict[str, dict[str, Any]] = {
    f"{P}/disputes/{{dispute_id}}/evidence/files": {
        "file": ("receipt.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")},
}
# object routes that are public reads (the profile is meant for everyone)
PUBLIC_OBJECTS = {path for method, path in PUBLIC if method == "GET" and "{" in path}
# object routes any signed-in user may call on someone else's object, by design
ANY_USER_OBJECTS = {f"{P}/orders/{{order_id}}/match"}  # a buyer takes a seller's ad


def routes(api: Api) -> list[tuple[str, str]]:
    out = []
    for ctx in iter_route_contexts(api.client.app.routes):  # type: ignore[attr-defined]
        if not isinstance(ctx.route, APIRoute) or ctx.path is None:
            continue
        for method in sorted(ctx.methods or ()):
            if method != "HEAD":
                out.append((method, ctx.path))
    return out


def call(api: Api, method: str, path: str, headers: dict[str, str],
         template: str | None = None) -> Any:
    kw: dict[str, Any] = {"headers": headers}
    if template in FILES and method == "POST":
        kw["files"] = FILES[template]
    elif method in ("POST", "PUT", "PATCH"):
        kw["json"] = BODIES.get(template or "", {})
    return api.client.request(method, path, **kw)


def fill(path: str, ids: dict[str, int | str] | int) -> str:
    def one(m: re.Match[str]) -> str:
        return str(ids if isinstance(ids, int) else ids.get(m.group(1), 1))
    return re.sub(r"\{(\w+)\}", one, path)


def test_every_private_route_needs_a_token(auth_api: Api) -> None:
    seen = routes(auth_api)
    assert len(seen) > 40
    wrong = []
    for method, path in seen:
        if (method, path) in PUBLIC:
            continue
        url = fill(path, 1)
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": "Bearer a.b.c"}):
            r = call(auth_api, method, url, headers)
            if r.status_code != 401 or r.headers.get("content-type") != "application/problem+json":
                wrong.append((method, path, headers.get("Authorization"), r.status_code))
    assert wrong == [], f"not 401 without a valid token: {wrong}"


class Objects:
    """Real objects owned by the seller (or buyer), made on first use."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._cache: dict[str, dict[str, int | str]] = {}
        custody = CustodyObjects(api, "seller")  # needs custody on: custody_auth_api
        self.makers: dict[str, Callable[[], dict[str, int | str]]] = {
            "trade": self._trade, "own_ad": self._ad, "dispute": self._dispute,
            "wallet": self._wallet, "payment_method": self._payment_method,
            "webhook": self._webhook, "admin": self._user, "auth_session": self._session,
            "trading_order": self._trading_order,
            "withdrawal_address": custody.withdrawal_address,
            "withdrawal": custody.withdrawal,
        }

    def ids(self, kind: str) -> dict[str, int | str]:
        if kind not in self._cache:
            maker = self.makers.get(kind)
            assert maker is not None, f"no factory for {kind!r}: add one to Objects"
            self._cache[kind] = maker()
        return self._cache[kind]

    def _ad(self) -> dict[str, int | str]:
        r = post_ad(self.api)
        assert r.status_code == 201, r.text
        return {"order_id": int(r.json()["id"])}

    def _trade(self) -> dict[str, int | str]:
        ad = int(self._ad()["order_id"])
        r = match(self.api, ad)
        assert r.status_code == 201, r.text
        return {"order_id": int(r.json()["order"]["id"])}

    def _dispute(self) -> dict[str, int | str]:
        t = funded_trade(self.api)
        out = act(self.api, t, "dispute", "buyer", dispute_type="payment_not_received",
                  description="no transfer")
        return {"dispute_id": int(out["dispute"]["id"]), "order_id": t}

    def _wallet(self) -> dict[str, int | str]:
        r = self.api.post(f"{P}/auth/wallets", "seller", json=sol_body(self.api, Keypair()))
        assert r.status_code == 201, r.text
        return {"wallet_id": int(r.json()["id"])}

    def _payment_method(self) -> dict[str, int | str]:
        r = self.api.post(f"{P}/payment-methods", "seller", json={
            "payment_type": "bank_transfer", "name": "my bank", "account_name": "S. Eller",
            "account_number": "DE89370400440532013000", "country_code": "DE"})
        assert r.status_code == 201, r.text
        return {"method_id": int(r.json()["id"])}

    def _webhook(self) -> dict[str, int | str]:
        # no DNS here: a loopback receiver, allowed the way the webhook tests do
        self.api.node.settings.disputes.events.webhook_allow_private = True
        r = self.api.post(f"{P}/webhooks", "seller", json={"url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        return {"webhook_id": int(r.json()["id"])}

    def _trading_order(self) -> dict[str, int | str]:
        from node.db.session import transaction
        from node.trading.pairs import seed_pairs
        from tests.api.trading_fixtures import deposit

        with transaction(self.api.node.sessions) as s:
            (pair,) = seed_pairs(s, (("ETH", "USDT"),))
            seller = self.api.get(f"{P}/auth/me", "seller").json()["user"]["id"]
            deposit(s, seller, "ETH", 10**18, "test:access:eth")
            pair_id = pair.id
        r = self.api.post(f"{P}/trading-orders", "seller", json={
            "trading_pair_id": pair_id, "side": "sell", "order_type": "limit",
            "quantity": str(10**17), "price": str(2_000 * 10**6)})
        assert r.status_code == 201, r.text
        return {"order_id": int(r.json()["id"])}

    def _session(self) -> dict[str, int | str]:
        pair = register(self.api, "session-owner")
        r = self.api.client.get(f"{P}/auth/sessions",
                                headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert r.status_code == 200 and r.json()[0]["current"] is True, r.text
        return {"session_id": str(r.json()[0]["id"])}

    def _user(self) -> dict[str, int | str]:
        me = self.api.get(f"{P}/auth/me", "seller").json()
        return {"user_id": int(me["user"]["id"]), "document_id": 1}


def test_no_user_reaches_another_users_objects(custody_auth_api: Api) -> None:
    api = custody_auth_api
    seen = routes(api)
    objects = Objects(api)
    missing: list[str] = []
    unchecked: list[str] = []
    wrong: list[Any] = []
    anonymous: list[Any] = []
    exercised: set[str] = set()
    for method, path in seen:
        if "{" not in path or path in PUBLIC_OBJECTS or path in ANY_USER_OBJECTS:
            continue
        kind = OBJECT_ROUTES.get(path)
        if kind is None:
            missing.append(path)
            continue
        if kind not in objects.makers:
            unchecked.append(f"{path} ({kind})")
            continue
        url = fill(path, objects.ids(kind))
        r = call(api, method, url, api.auth("outsider"), template=path)
        if r.status_code not in (403, 404):
            wrong.append((method, url, r.status_code, r.text[:200]))
        r = call(api, method, url, {}, template=path)
        if r.status_code != 401:
            anonymous.append((method, url, r.status_code, r.text[:200]))
        exercised.add(path)
    assert missing == [], f"object routes not in OBJECT_ROUTES: {sorted(set(missing))}"
    assert unchecked == [], (f"object routes whose kind has no factory in Objects "
                             f"(ownership not exercised): {sorted(set(unchecked))}")
    assert wrong == [], f"a non-owner got past: {wrong}"
    assert anonymous == [], f"not 401 without a token on a real object: {anonymous}"
    # the custody routes were reached on real objects, and the objects are intact
    custody_routes = {p for p in OBJECT_ROUTES if "/withdrawal" in p}
    assert len(custody_routes) == 3 and custody_routes <= exercised
    wid = objects.ids("withdrawal")["withdrawal_id"]
    w = api.get(f"{P}/withdrawals/{wid}", "seller")
    assert w.status_code == 200 and w.json()["status"] == "held", w.text
    entry = objects.ids("withdrawal_address")["entry_id"]
    assert entry in [e["id"] for e in api.get(f"{P}/withdrawal-addresses", "seller").json()]
    assert api.get(f"{P}/withdrawals", "outsider").json() == []
    assert api.get(f"{P}/withdrawal-addresses", "outsider").json() == []
    # own lists show only own objects
    assert api.get(f"{P}/orders/my", "outsider").json()["total"] == 0
    assert api.get(f"{P}/auth/wallets", "outsider").json() == []
    assert api.get(f"{P}/payment-methods", "outsider").json() == []
    assert api.get(f"{P}/orders/my", "seller").json()["total"] >= 2
