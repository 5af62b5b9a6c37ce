"""Fixtures of the custody tests: nodes built by ``build_node`` exactly as in
production (custody seed file, chain RPC URLs), on real chains and a real
PostgreSQL database. Watchers are stepped by the tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet

from node.config import load_settings
from node.custody.keystore import write_seed_file
from node.custody.service import CustodyService, service_for
from node.db.session import transaction
from node.runtime import Node, build_node
from node.trades import create_user
from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import __all__ as _bitcoin_fixtures

__all__ = [
    "CustodyNode",
    "btc_custody_settings",
    "make_btc_custody_node",
    "seed_file",
    *_bitcoin_fixtures,
]

AGENT_SEED = hashlib.sha256(b"custody test agent").hexdigest()
# a fixed, public test mnemonic: addresses are reproducible across runs
TEST_MNEMONIC = " ".join(
    [
        "legal",
        "winner",
        "thank",
        "year",
        "wave",
        "sausage",
        "worth",
        "useful",
        "legal",
        "winner",
        "thank",
        "yellow",
    ]
)


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "custody-seed"
    write_seed_file(path, TEST_MNEMONIC)
    return path


@dataclass
class CustodyNode:
    node: Node
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def svc(self) -> CustodyService:
        return service_for(self.node.sessions)

    def sync(self) -> None:
        for w in self.svc.watchers:
            w.sync()

    def add_users(self, *names: str) -> None:
        with transaction(self.node.sessions) as s:
            for name in names:
                u, self.tokens[name] = create_user(s, username=name)
                s.flush()
                self.users[name] = u.id


def btc_custody_settings(
    regtest: BitcoinRegtest,
    database_url: str,
    data_dir: Path,
    seed: Path,
    *,
    confirmations: int = 2,
    **custody: Any,
) -> Any:
    user, password = regtest.auth()
    return load_settings(
        mode="production",
        data_dir=data_dir,
        database_url=database_url,
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        evm={"enabled": False},
        btc={
            "enabled": True,
            "network": "regtest",
            "rpc_url": regtest.url,
            "rpc_user": user,
            "rpc_password": password,
            "agent_seed": AGENT_SEED,
            "confirmations": confirmations,
            "finality_depth": 20,
        },
        custody={"seed_file": str(seed), **custody},
    )


def make_btc_custody_node(
    regtest: BitcoinRegtest, database_url: str, data_dir: Path, seed: Path, **kw: Any
) -> CustodyNode:
    return CustodyNode(
        build_node(btc_custody_settings(regtest, database_url, data_dir, seed, **kw))
    )


def fund(wallet: DevWallet, address: str, amount: int) -> str:
    return wallet.send(address, amount)
