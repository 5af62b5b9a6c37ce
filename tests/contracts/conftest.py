"""Fixtures for the Escrow contract suite: ape test accounts on a real anvil,
the Escrow contract and the misbehaving test tokens (real contracts).

Contracts deployed by session fixtures are rolled back to a snapshot after
every test by ape's isolation, so each test starts from the same chain."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contracts.helpers import Asset, Opener, Parties, prefund

# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def parties(accounts: Any) -> Parties:
    return Parties(*accounts[:8])


@pytest.fixture(scope="session")
def owner(parties: Parties) -> Any:
    return parties.owner


@pytest.fixture(scope="session")
def seller(parties: Parties) -> Any:
    return parties.seller


@pytest.fixture(scope="session")
def buyer(parties: Parties) -> Any:
    return parties.buyer


@pytest.fixture(scope="session")
def arbitrator(parties: Parties) -> Any:
    return parties.arbitrator


@pytest.fixture(scope="session")
def outsider(parties: Parties) -> Any:
    return parties.outsider


@pytest.fixture(scope="session")
def fee_recipient(parties: Parties) -> Any:
    return parties.fee_recipient


@pytest.fixture(scope="session")
def relayer(parties: Parties) -> Any:
    return parties.relayer


@pytest.fixture(scope="session")
def fresh(parties: Parties) -> Any:
    """An account with no tokens and no approvals."""
    return parties.fresh


@pytest.fixture(scope="session")
def escrow(project: Any, owner: Any) -> Any:
    return owner.deploy(project.Escrow)


@pytest.fixture(scope="session")
def other_escrow(project: Any, owner: Any, escrow: Any) -> Any:
    """A second deployment, for cross-contract replay."""
    return owner.deploy(project.Escrow)


@pytest.fixture(scope="session")
def open_escrow(escrow: Any, parties: Parties) -> Opener:
    return Opener(escrow, parties)


@pytest.fixture(scope="session")
def test_token(project: Any, owner: Any) -> Any:
    return project.TestToken.deploy("Test token", "TEST", 18, sender=owner)


@pytest.fixture(scope="session")
def usdt(project: Any, owner: Any) -> Any:
    return project.UsdtToken.deploy(sender=owner)


@pytest.fixture(scope="session")
def false_token(project: Any, owner: Any) -> Any:
    return project.FalseToken.deploy(sender=owner)


@pytest.fixture(scope="session")
def fee_token(project: Any, owner: Any) -> Any:
    return project.FeeOnTransferToken.deploy(sender=owner)


@pytest.fixture(scope="session")
def reentrant_token(project: Any, owner: Any) -> Any:
    return project.ReentrantToken.deploy(sender=owner)


@pytest.fixture(scope="session")
def blocklist_token(project: Any, owner: Any) -> Any:
    return project.BlocklistToken.deploy(sender=owner)


@pytest.fixture(scope="session")
def receiver(project: Any, buyer: Any) -> Any:
    """A contract account owned by the buyer that rejects the native coin."""
    return project.RevertingReceiver.deploy(sender=buyer)


TOKEN_FIXTURES = {
    "TestToken": "test_token",
    "UsdtToken": "usdt",
    "FalseToken": "false_token",
    "BlocklistToken": "blocklist_token",
    "ReentrantToken": "reentrant_token",
}
# Every asset an escrow can hold; the misbehaving tokens behave here (not
# failing, nobody blocklisted, not armed), their misbehaviour has its own tests.
ALL_ASSETS = ["native", *TOKEN_FIXTURES]
MAIN_ASSETS = ["native", "TestToken", "UsdtToken"]


def make_asset(request: pytest.FixtureRequest, kind: str) -> Asset:
    if kind == "native":
        return Asset("native")
    return Asset(kind, request.getfixturevalue(TOKEN_FIXTURES[kind]))


@pytest.fixture(params=ALL_ASSETS)
def any_asset(request: pytest.FixtureRequest) -> Asset:
    """Each asset kind in turn."""
    return make_asset(request, request.param)


@pytest.fixture(params=MAIN_ASSETS)
def asset(request: pytest.FixtureRequest) -> Asset:
    """The native coin, a standard ERC-20 and a USDT-style token in turn."""
    return make_asset(request, request.param)


@pytest.fixture
def native() -> Asset:
    return Asset("native")


@pytest.fixture
def token_asset(test_token: Any) -> Asset:
    return Asset("TestToken", test_token)


@pytest.fixture(scope="session", autouse=True)
def _deploy_all(
    escrow: Any,
    other_escrow: Any,
    test_token: Any,
    usdt: Any,
    false_token: Any,
    fee_token: Any,
    reentrant_token: Any,
    blocklist_token: Any,
    receiver: Any,
    parties: Parties,
) -> None:
    """Deploys every contract before the first test (a session fixture first
    used inside a test would be rolled back with that test's snapshot), and
    gives the sellers `seller` and `outsider` tokens approved for `escrow`."""
    tokens = [test_token, usdt, false_token, reentrant_token, blocklist_token]
    prefund(escrow, tokens, [parties.seller, parties.outsider])


def pytest_configure(config: pytest.Config) -> None:
    """pyproject.toml disables ape's pytest plugin for the other tiers; this
    tier needs it (scripts/test-contracts.sh turns it back on)."""
    if not config.pluginmanager.has_plugin("ape_test"):
        raise pytest.UsageError(
            "tests/contracts needs ape's pytest plugin: run scripts/test-contracts.sh"
        )
