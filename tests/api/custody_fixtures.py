"""Fixtures of the custody tests: nodes built by ``build_node`` exactly as in
production (custody seed file, chain RPC URLs), on real chains and a real
PostgreSQL database. Watchers are stepped by the tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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
    "EvmCustodyApi",
    "evm_custody",
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

    def sync_changes(self) -> list[str]:
        """Step the Solana deposit watcher; what it credited or reversed."""
        return list(self.svc.sol_watcher.step())

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


@dataclass
class EvmCustodyApi:
    """The HTTP API of a node on anvil with custody on (production settings:
    seed file, RPC URL), the users' tokens and the custody service."""

    client: Any
    node: Node
    chain: Any  # tests.functional.evm_fixtures.EvmChain
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    @property
    def svc(self) -> CustodyService:
        return service_for(self.node.sessions)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.auth(who) if who else {}, **kw)

    def post(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=self.auth(who) if who else {}, **kw)

    def delete(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.delete(path, headers=self.auth(who) if who else {}, **kw)

    def sync(self, mine: int = 0) -> None:
        """Mine ``mine`` blocks, then let the custody watchers catch up."""
        if mine:
            self.chain.anvil.mine(mine)
        for w in self.svc.watchers:
            w.sync()

    def balances(self, who: str) -> dict[str, dict[str, int]]:
        body = self.get("/api/p2p-crypto/balances", who).json()
        return {b["asset"]: {k: int(b[k]) for k in ("available", "held", "debt")} for b in body}


def evm_custody_settings(
    evm_chain: Any, pg_url: str, data_dir: Path, seed: Path, **custody: Any
) -> Any:
    dep = evm_chain.deployment
    accts = evm_chain.accounts
    return load_settings(
        mode="production",
        data_dir=data_dir,
        database_url=pg_url,
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        evm={
            "rpc_url": evm_chain.anvil.url,
            "chain_id": dep.chain_id,
            "escrow_address": dep.escrow,
            "start_block": dep.deploy_block,
            "confirmations": 2,
            "agent_key": accts[7].key,
            "relayer_key": accts[9].key,
            "tokens": [
                {"symbol": t.symbol, "name": t.name, "address": t.address, "decimals": t.decimals}
                for t in dep.tokens
            ],
        },
        custody={"seed_file": str(seed), **custody},
    )


@pytest.fixture
def evm_custody(
    evm_chain: Any, pg_url: str, tmp_path: Path, seed_file: Path
) -> Iterator[EvmCustodyApi]:
    from fastapi.testclient import TestClient

    settings = evm_custody_settings(
        evm_chain,
        pg_url,
        tmp_path,
        seed_file,
        new_address_delay_s=3600,
        user_daily_limit={"ETH": 5 * 10**17},
        global_daily_limit={"ETH": 10**18},
        hot_ceiling={"ETH": 5 * 10**17, "TUSD": 4 * 10**18},
        cold_address={"ETH": evm_chain.accounts[5].address, "TUSD": evm_chain.accounts[5].address},
    )
    node = build_node(settings)
    api = EvmCustodyApi(client=None, node=node, chain=evm_chain)
    with transaction(node.sessions) as s:
        for name, role in (("seller", "trader"), ("buyer", "trader"), ("admin", "admin")):
            u, api.tokens[name] = create_user(s, username=name, role=role)
            s.flush()
            api.users[name] = u.id
    api.client = TestClient(node.app(), raise_server_exceptions=False)
    try:
        yield api
    finally:
        api.client.close()
        node.stop()
