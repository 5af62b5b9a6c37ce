"""A whole trade walked by three users who each signed in a different way:
the seller with password + TOTP, the buyer with Sign-In with Ethereum (the
same key that receives the crypto), the arbitrator with a Solana signed
message (promoted by an admin). The trade is opened, funded from the seller's
own wallet, marked paid, disputed, and ruled 30/70 by that arbitrator on the
real chain; every step runs on the users' JWT access tokens, and the audit
log shows the three sign-ins, the promotion and the ruling."""

from __future__ import annotations

from eth_account import Account
from solders.keypair import Keypair

from tests.api.auth_fixtures import *  # noqa: F403
from tests.api.auth_fixtures import (
    AUTH,
    PASSWORD,
    bearer,
    enable_totp,
    next_code,
    register,
    siwe_body,
    sol_body,
    wallet_sign_in,
)
from tests.api.conftest import Api
from tests.api.test_api_p2p_orders import act, funded_trade, sign, status

P = "/api/p2p-crypto"


def test_three_users_three_sign_ins_one_disputed_trade(auth_api: Api) -> None:
    api = auth_api
    # seller: password + TOTP
    first = register(api, "sam-seller")
    totp, _codes = enable_totp(api, first["access_token"])
    r = api.client.post(f"{AUTH}/login", json={"username": "sam-seller", "password": PASSWORD,
                                               "totp_code": next_code(totp)})
    assert r.status_code == 200, r.text
    seller = r.json()
    # buyer: SIWE with the wallet that will receive the coins
    buyer_wallet = Account.from_key(api.chain.buyer.key)
    r = wallet_sign_in(api, siwe_body(api, buyer_wallet))
    assert r.status_code == 200, r.text
    buyer = r.json()
    # arbitrator: a Solana message; an admin makes the account an arbitrator,
    # which signs it out, and it signs in again with the new role
    kp = Keypair()
    arb = wallet_sign_in(api, sol_body(api, kp)).json()
    r = api.post(f"{P}/admin/users/{arb['user']['id']}/role", "admin", json={"role": "arbitrator"})
    assert r.status_code == 200 and r.json()["role"] == "arbitrator"
    assert api.client.get(f"{AUTH}/me", headers=bearer(arb["access_token"])).status_code == 401
    arb = wallet_sign_in(api, sol_body(api, kp)).json()
    assert arb["user"]["role"] == "arbitrator"

    # from here on every call uses these three users' JWTs
    api.tokens.update(seller=seller["access_token"], buyer=buyer["access_token"],
                      arbitrator=arb["access_token"])
    t = funded_trade(api)
    got = status(api, t)
    assert got["status"] == "funded"
    assert {got["seller_id"], got["buyer_id"]} == {seller["user"]["id"], buyer["user"]["id"]}
    act(api, t, "payment", "buyer")
    api.sync()
    assert status(api, t)["status"] == "paid"
    out = act(api, t, "dispute", "buyer", dispute_type="payment_not_received",
              description="the seller says no SEPA transfer arrived")
    d = out["dispute"]["id"]
    api.sync()
    assert status(api, t)["status"] == "disputed"
    # the admin assigns the case to the Solana-signed-in arbitrator, who rules
    r = api.post(f"{P}/disputes/{d}/assign", "admin",
                 json={"arbitrator_user_id": arb["user"]["id"]})
    assert r.status_code == 200, r.text
    r = api.post(f"{P}/disputes/{d}/resolve", "seller", json={"buyer_bps": 0})
    assert r.status_code == 403
    seller_before = api.chain.w3.eth.get_balance(api.chain.seller.address)
    r = api.post(f"{P}/disputes/{d}/resolve", "arbitrator",
                 json={"buyer_bps": 3000, "resolution_notes": "partial proof of payment"})
    assert r.status_code == 202, r.text
    api.sync()
    got = status(api, t)
    assert got["status"] == "resolved" and got["escrow"]["buyer_bps"] == 3000
    assert api.chain.w3.eth.get_balance(api.chain.seller.address) - seller_before == 7 * 10**17

    log = api.get(f"{P}/admin/audit-log", "admin", params={"limit": 200}).json()["data"]
    methods = {e["details"].get("method") for e in log if e["action"] == "auth.signin"}
    assert {"password+totp", "siwe", "sol"} <= methods
    assert any(e["action"] == "admin.role_changed" for e in log)
    assert any(e["action"] == "dispute.ruled" and e["subject"] == f"dispute:{d}" for e in log)
    # the ruling arbitrator's token cannot be used after a logout
    assert api.client.post(f"{AUTH}/logout", headers=bearer(arb["access_token"])).status_code == 204
    r = api.post(f"{P}/disputes/{d}/resolve", "arbitrator", json={"buyer_bps": 10_000})
    assert r.status_code == 401


def test_a_release_is_audited_with_its_actor(auth_api: Api) -> None:
    api = auth_api
    t = funded_trade(api)
    act(api, t, "payment", "buyer")
    api.sync()
    url = f"{P}/orders/{t}/release-escrow"
    r = api.post(url, "seller", json={})
    assert r.status_code == 200  # only the payload to sign: nothing moved, nothing audited
    body = {"signature": sign(api, "seller", r.json()["payload"]), "expiry": r.json()["expiry"]}
    key = api.auth("seller") | {"Idempotency-Key": f"release-{t}"}
    first = api.client.post(url, json=body, headers=key)
    again = api.client.post(url, json=body, headers=key)  # a replay: audited once
    assert first.status_code == 202 and again.content == first.content
    api.sync()
    assert status(api, t)["status"] == "completed"
    seller_id = api.get(f"{AUTH}/me", "seller").json()["user"]["id"]
    log = api.get(f"{P}/admin/audit-log", "admin", params={"action": "escrow."}).json()["data"]
    assert [(e["action"], e["subject"], e["actor_id"]) for e in log] == [
        ("escrow.release", f"trade:{t}", seller_id)]
