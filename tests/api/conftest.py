"""An API over a real node: real anvil with the contracts deployed, a real
PostgreSQL database, the node configured exactly as in production (RPC URL,
contract address, keys), served in-process through FastAPI's TestClient.
The watcher and relayer are stepped by the tests (``api.sync()``) so every
test is deterministic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.config import load_settings
from node.db.session import transaction
from node.runtime import Node, build_node
from node.trades import create_user
from tests.functional.evm_fixtures import EvmChain

AGENT = 7


@dataclass
class Api:
    client: TestClient
    node: Node
    chain: EvmChain
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def sync(self, mine: int = 0) -> None:
        """Mine ``mine`` blocks, then let the watcher catch up and the relayer
        work its queue until nothing is left to do."""
        if mine:
            self.chain.anvil.mine(mine)
        for _ in range(3):
            for relayer in self.node.relayers:
                relayer.process_once()
            self.chain.anvil.mine(1)
            for watcher in self.node.watchers:
                watcher.sync()

    def get(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.auth(who) if who else {}, **kw)

    def post(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=self.auth(who) if who else {}, **kw)

    def delete(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.delete(path, headers=self.auth(who) if who else {}, **kw)


@pytest.fixture(scope="session")
def shared_evm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmChain]:
    """One anvil with the contracts deployed for the whole API suite; each
    test runs from an ``evm_snapshot`` of it and reverts afterwards."""
    from localchain.evm import Anvil
    from localchain.evm_deploy import deploy
    from web3 import Web3

    from node.chains.evm.artifacts import load

    tmp = tmp_path_factory.mktemp("api-anvil")
    with Anvil(data_dir=tmp) as anvil:
        dep = deploy(anvil.url, tmp / "deployment.json", ws_url=anvil.ws_url)
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        escrow = w3.eth.contract(address=dep.escrow, abi=load("Escrow").abi)
        yield EvmChain(anvil=anvil, deployment=dep, w3=w3, escrow=escrow)


@pytest.fixture
def evm_chain(shared_evm: EvmChain) -> Iterator[EvmChain]:
    snap = shared_evm.anvil.snapshot()
    yield shared_evm
    shared_evm.anvil.revert(snap)


@pytest.fixture
def api(evm_chain: EvmChain, pg_url: str, tmp_path: Any) -> Iterator[Api]:
    dep = evm_chain.deployment
    accts = evm_chain.accounts
    settings = load_settings(
        mode="production",
        data_dir=tmp_path,
        database_url=pg_url,
        # market: a fixed payment-details key; trade limits off (these tests trade
        # as unverified users; tests/api/test_market_limits.py switches them on)
        market={"trade_limits_enabled": False,
                "payment_key": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="},
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        disputes={"allow_unsigned_rulings": True},  # API-token arbitrator
        evm={
            "rpc_url": evm_chain.anvil.url,
            "chain_id": dep.chain_id,
            "escrow_address": dep.escrow,
            "start_block": dep.deploy_block,
            "confirmations": 1,
            "agent_key": accts[AGENT].key,
            "relayer_key": accts[9].key,
            "tokens": [
                {"symbol": t.symbol, "name": t.name, "address": t.address,
                 "decimals": t.decimals}
                for t in dep.tokens
            ],
        },
    )
    node = build_node(settings)
    tokens = {}
    with transaction(node.sessions) as session:
        for name, role in (("seller", "trader"), ("buyer", "trader"), ("outsider", "trader"),
                           ("arbitrator", "arbitrator")):
            _u, tokens[name] = create_user(session, username=name, role=role)
    client = TestClient(node.app(), raise_server_exceptions=False)
    try:
        yield Api(client=client, node=node, chain=evm_chain, tokens=tokens)
    finally:
        client.close()
        node.stop()
