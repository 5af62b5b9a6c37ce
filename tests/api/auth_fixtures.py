"""Fixtures and helpers of the accounts tests: an API (tests/api/conftest.py's
``api``: real anvil + PostgreSQL) with an admin, and sign-in helpers that do
what a wallet does: SIWE with an eth-account key, a Solana message with a
solders keypair, a Bitcoin message with a bitcoinlib key, password + TOTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from limits import parse
from solders.keypair import Keypair

from node.db.session import transaction
from node.trades import create_user
from tests.api.conftest import Api

PASSWORD = "correct horse battery staple"
AUTH = "/api/p2p-crypto/auth"


@pytest.fixture
def auth_api(api: Api) -> Api:
    """``api`` plus an admin (``api.tokens['admin']``, an API token). The
    sign-in rate limit is raised (tests sign in many times from one client);
    ``strict_signin_limit`` puts the configured one back."""
    with transaction(api.node.sessions) as s:
        _u, api.tokens["admin"] = create_user(s, username="admin", role="admin")
    api.client.app.state.rate_limits.signin = parse("1000/minute")  # type: ignore[attr-defined]
    return api


def strict_signin_limit(api: Api) -> None:
    api.client.app.state.rate_limits.signin = parse(  # type: ignore[attr-defined]
        api.node.settings.auth.rate_limit_signin)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(api: Api, username: str, password: str = PASSWORD) -> dict[str, Any]:
    r = api.client.post(f"{AUTH}/register", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    return dict(r.json())


def enable_totp(api: Api, access_token: str) -> tuple[pyotp.TOTP, list[str]]:
    """Turn 2FA on with the current step's code (so a later sign-in uses
    ``next_code``: the following step, inside the accepted drift)."""
    r = api.client.post(f"{AUTH}/totp/setup", headers=bearer(access_token))
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    r = api.client.post(f"{AUTH}/totp/enable", headers=bearer(access_token),
                        json={"code": totp.at(datetime.now(UTC))})
    assert r.status_code == 200, r.text
    return totp, list(r.json()["recovery_codes"])


def next_code(totp: pyotp.TOTP) -> str:
    """The next 30-second step's code: not used yet, and accepted (drift 1)."""
    return totp.at(datetime.now(UTC) + timedelta(seconds=30))


def nonce(api: Api, chain: str, address: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"chain": chain}
    if address:
        body["address"] = address
    r = api.client.post(f"{AUTH}/nonce", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def siwe_message(account: Any, n: dict[str, Any], **over: Any) -> str:
    """An EIP-4361 message as a wallet builds it from /auth/nonce."""
    from siwe import SiweMessage

    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "domain": n["domain"], "address": account.address, "uri": n["uri"], "version": "1",
        "chain_id": n["chain_id"], "nonce": n["nonce"],
        "issued_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "expiration_time": (now + timedelta(minutes=5)).isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "statement": "Sign in to escrowd.",
    }
    fields.update(over)
    return str(SiweMessage(**fields).prepare_message())


def siwe_sign(account: Any, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix(
        "0x")


def siwe_body(api: Api, account: Any, **over: Any) -> dict[str, Any]:
    msg = siwe_message(account, nonce(api, "evm"), **over)
    return {"chain": "evm", "message": msg, "signature": siwe_sign(account, msg)}


def sol_body(api: Api, kp: Keypair) -> dict[str, Any]:
    addr = str(kp.pubkey())
    msg = nonce(api, "sol", addr)["message"]
    return {"chain": "sol", "address": addr, "message": msg,
            "signature": str(kp.sign_message(msg.encode()))}


def btc_body(api: Api, key: Any) -> dict[str, Any]:
    addr = key.address()
    msg = nonce(api, "btc", addr)["message"]
    return {"chain": "btc", "address": addr, "message": msg,
            "signature": key.sign_message(msg.encode()).as_base64()}


def btc_key() -> Any:
    from bitcoinlib.keys import HDKey

    return HDKey(network="regtest", witness_type="segwit")


def wallet_sign_in(api: Api, body: dict[str, Any]) -> Any:
    return api.client.post(f"{AUTH}/wallet", json=body)


def new_eth_account() -> Any:
    return Account.create()
