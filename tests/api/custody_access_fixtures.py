"""The access-control tests' node with custody on, and the custody objects
they need (a withdrawal allow-list entry, a withdrawal) owned by one user.

The node is tests/api/conftest.py's ``api`` (via ``auth_api``) unchanged,
turned to custody the way an operator does it in production: a seed file
(generated into the test's tmp_path) named by ``ESCROWD_CUSTODY__SEED_FILE``.
The allow-list delay is 0 (``ESCROWD_CUSTODY__NEW_ADDRESS_DELAY_S``) so a
new entry can be withdrawn to at once."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest

from node.accounts.totp import enable_totp, setup_totp
from node.custody.keystore import write_seed_file
from node.custody.ledger import NODE_DEPOSIT, Leg, post_entry, user_account
from node.custody.service import service_for
from node.db.session import transaction
from tests.api.conftest import Api

__all__ = ["custody_auth_api"]

P = "/api/p2p-crypto"


@pytest.fixture
def custody_auth_api(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Api:
    """``auth_api`` (production mode, real anvil + PostgreSQL) with custody on."""
    seed = tmp_path / "custody-seed"
    write_seed_file(seed)  # a fresh mnemonic, 0600
    monkeypatch.setenv("ESCROWD_CUSTODY__SEED_FILE", str(seed))
    monkeypatch.setenv("ESCROWD_CUSTODY__NEW_ADDRESS_DELAY_S", "0")
    api: Api = request.getfixturevalue("auth_api")
    assert api.node.settings.custody.seed_file == seed
    service_for(api.node.sessions)  # raises CustodyUnavailableError when custody is off
    return api


def user_id(api: Api, who: str) -> int:
    r = api.get(f"{P}/auth/me", who)
    assert r.status_code == 200, r.text
    return int(r.json()["user"]["id"])


def turn_on_totp(api: Api, who: str) -> pyotp.TOTP:
    """2FA on for ``who`` (node.accounts, as tests/api/test_custody_evm.py does)."""
    uid = user_id(api, who)
    with transaction(api.node.sessions) as s:
        setup = setup_totp(s, user_id=uid, account=who, issuer="escrowd")
        totp = pyotp.TOTP(setup.secret)
        enable_totp(s, user_id=uid, code=totp.now(), count=1)
    return totp


class CustodyObjects:
    """Custody objects owned by ``owner``, made through the API on first use."""

    def __init__(self, api: Api, owner: str) -> None:
        self.api = api
        self.owner = owner
        self._entry: dict[str, int | str] | None = None
        self._withdrawal: dict[str, int | str] | None = None

    def _allow(self, address: str) -> int:
        r = self.api.post(f"{P}/withdrawal-addresses", self.owner,
                          json={"chain": "evm", "address": address, "label": "access test"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def withdrawal_address(self) -> dict[str, int | str]:
        """An allow-list entry of its own (not the withdrawal's payee: a
        route that wrongly let someone else delete it must not break the
        withdrawal's factory, so the test names that route)."""
        if self._entry is None:
            self._entry = {"entry_id": self._allow(self.api.chain.accounts[8].address)}
        return self._entry

    def withdrawal(self) -> dict[str, int | str]:
        """A ``held`` withdrawal of 0.1 ETH to an allow-listed address: the
        owner has 1 ETH (a deposit entry in the custody ledger) and 2FA on."""
        if self._withdrawal is None:
            api = self.api
            uid = user_id(api, self.owner)
            with transaction(api.node.sessions) as s:
                post_entry(s, ref="test:access:custody-eth", kind="deposit", legs=[
                    Leg(NODE_DEPOSIT, "ETH", -10**18),
                    Leg(user_account(uid, "available"), "ETH", 10**18)])
            totp = turn_on_totp(api, self.owner)
            payee = api.chain.accounts[6].address
            self._allow(payee)
            r = api.post(f"{P}/withdrawals", self.owner, json={
                "asset": "ETH", "address": payee, "amount": str(10**17),
                # the next time step: enabling 2FA used this one
                "totp_code": totp.at(time.time() + 30), "request_key": "access-1"})
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "held", r.json()
            self._withdrawal = {"withdrawal_id": int(r.json()["id"])}
        return self._withdrawal
