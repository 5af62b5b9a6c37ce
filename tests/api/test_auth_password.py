"""Password + TOTP sign-in over the real API: register, log in, 2FA with
one-time recovery codes, a TOTP code refused the second time within its
window, refresh-token rotation with reuse detection, logout that works at
once, and the audit trail an admin reads."""

from __future__ import annotations

from typing import Any

from tests.api.auth_fixtures import *  # noqa: F403
from tests.api.auth_fixtures import (
    AUTH,
    PASSWORD,
    Api,
    bearer,
    enable_totp,
    next_code,
    register,
)


def _login(api: Api, username: str, password: str = PASSWORD, code: str | None = None) -> Any:
    body: dict[str, Any] = {"username": username, "password": password}
    if code is not None:
        body["totp_code"] = code
    return api.client.post(f"{AUTH}/login", json=body)


def test_register_login_me(auth_api: Api) -> None:
    pair = register(auth_api, "alice")
    assert pair["token_type"] == "bearer" and pair["user"]["role"] == "trader"
    r = auth_api.client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
    assert r.status_code == 200 and r.json()["user"]["username"] == "alice"
    assert r.json()["has_password"] is True and r.json()["totp_enabled"] is False
    r = _login(auth_api, "alice", "wrong password!")
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    assert r.headers["content-type"] == "application/problem+json"
    r = _login(auth_api, "nobody-here")
    assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = _login(auth_api, "alice")
    assert r.status_code == 200
    # the JWT works on the existing endpoints, like the API tokens do
    r = auth_api.client.get("/api/p2p-crypto/orders/my", headers=bearer(r.json()["access_token"]))
    assert r.status_code == 200
    # changing the password needs the current one and signs out the other sessions
    a, b = _login(auth_api, "alice").json(), _login(auth_api, "alice").json()
    new = {"current_password": "not it at all", "new_password": "another good password"}
    r = auth_api.client.post(f"{AUTH}/password", headers=bearer(a["access_token"]), json=new)
    assert r.status_code == 401
    r = auth_api.client.post(f"{AUTH}/password", headers=bearer(a["access_token"]),
                             json=new | {"current_password": PASSWORD})
    assert r.status_code == 204
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(a["access_token"])).status_code == 200
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(b["access_token"])).status_code == 401
    assert _login(auth_api, "alice").status_code == 401
    assert _login(auth_api, "alice", "another good password").status_code == 200
    # an API-token user (made by the CLI) sets a first password, then signs in with it
    r = auth_api.post(f"{AUTH}/password", "buyer", json={"new_password": "buyers own pass"})
    assert r.status_code == 204
    assert _login(auth_api, "buyer", "buyers own pass").status_code == 200
    # duplicate and weak registrations are 4xx problems
    r = auth_api.client.post(f"{AUTH}/register", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 422 and r.json()["code"] == "username_taken"
    r = auth_api.client.post(f"{AUTH}/register",
                             json={"username": "bob", "password": "aaaaaaaaaaaa"})
    assert r.status_code == 422 and r.json()["code"] == "weak_password"


def test_totp_sign_in_and_code_reuse(auth_api: Api) -> None:
    pair = register(auth_api, "carol")
    totp, recovery = enable_totp(auth_api, pair["access_token"])
    assert len(recovery) == 10
    r = _login(auth_api, "carol")
    assert r.status_code == 401 and r.json()["code"] == "totp_required"
    code = next_code(totp)
    r = _login(auth_api, "carol", code=code)
    assert r.status_code == 200, r.text
    # the same code again, still inside its window: refused
    r = _login(auth_api, "carol", code=code)
    assert r.status_code == 401 and r.json()["code"] == "totp_reused"
    r = _login(auth_api, "carol", code="000000" if code != "000000" else "111111")
    assert r.status_code == 401 and r.json()["code"] in ("totp_invalid", "totp_reused")
    # a recovery code works once
    r = _login(auth_api, "carol", code=recovery[0])
    assert r.status_code == 200
    r = _login(auth_api, "carol", code=recovery[0])
    assert r.status_code == 401 and r.json()["code"] == "totp_invalid"
    me = auth_api.client.get(f"{AUTH}/me", headers=bearer(r.json() and pair["access_token"]))
    assert me.json()["totp_enabled"] is True and me.json()["recovery_codes_left"] == 9


def test_refresh_rotation_reuse_and_logout(auth_api: Api) -> None:
    first = register(auth_api, "dave")
    r = auth_api.client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    # the spent refresh token presented again: the whole session is revoked
    r = auth_api.client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "refresh_reused"
    r = auth_api.client.get(f"{AUTH}/me", headers=bearer(second["access_token"]))
    assert r.status_code == 401 and r.json()["code"] == "session_revoked"
    r = auth_api.client.post(f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 401 and r.json()["code"] == "session_revoked"

    # logout: the access token stops working at once, other sessions do not
    a = _login(auth_api, "dave").json()
    b = _login(auth_api, "dave").json()
    r = auth_api.client.post(f"{AUTH}/logout", headers=bearer(a["access_token"]))
    assert r.status_code == 204
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(a["access_token"])).status_code == 401
    r = auth_api.client.post(f"{AUTH}/refresh", json={"refresh_token": a["refresh_token"]})
    assert r.status_code == 401
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(b["access_token"])).status_code == 200
    # one session signs another out (another device)
    c = _login(auth_api, "dave").json()
    listed = auth_api.client.get(f"{AUTH}/sessions", headers=bearer(b["access_token"])).json()
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    other = next(s["id"] for s in listed if not s["current"])
    r = auth_api.client.delete(f"{AUTH}/sessions/{other}", headers=bearer(b["access_token"]))
    assert r.status_code == 204
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(c["access_token"])).status_code == 401
    r = auth_api.client.post(f"{AUTH}/logout", headers=bearer(b["access_token"]),
                             json={"everywhere": True})
    assert r.status_code == 204
    assert auth_api.client.get(f"{AUTH}/me", headers=bearer(b["access_token"])).status_code == 401
    # garbage tokens are 401 problems, never 500s
    for tok in ("a.b.c", "x" * 300, "eyJhbGciOiJub25lIn0.e30."):
        r = auth_api.client.get(f"{AUTH}/me", headers=bearer(tok))
        assert r.status_code == 401, (tok, r.text)


def test_audit_log_is_admin_only_and_records_sign_ins(auth_api: Api) -> None:
    pair = register(auth_api, "erin")
    _login(auth_api, "erin", "not the password")
    url = "/api/p2p-crypto/admin/audit-log"
    assert auth_api.client.get(url).status_code == 401
    r = auth_api.client.get(url, headers=bearer(pair["access_token"]))
    assert r.status_code == 403 and r.json()["code"] == "admins_only"
    r = auth_api.get(url, "admin", params={"action": "auth."})
    assert r.status_code == 200, r.text
    actions = [e["action"] for e in r.json()["data"]]
    assert "auth.signin_failed" in actions and "auth.signin" in actions
    assert "auth.register" in actions
    r = auth_api.get(url, "admin", params={"action": "auth.signin_failed", "limit": 1})
    assert r.json()["total"] == 1 and r.json()["data"][0]["subject"] == "username:erin"
    r = auth_api.get(url, "admin", params={"since": "2020-01-01T00:00:00"})
    assert r.status_code == 422  # a time without a zone is refused, not a 500
