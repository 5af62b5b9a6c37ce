"""EVM fixtures shared by the functional tests (registered as a pytest plugin
by tests/conftest.py).

- ``evm_chain``: the ``anvil`` fixture with Escrow, TUSD (18 decimals) and
  USDT (6 decimals) deployed (localchain.evm_deploy), as an ``EvmChain``:
  deployment data, a web3 handle, the dev accounts, and helpers to open and
  move escrows with direct calls from the dev accounts (anvil unlocks them).
- ``evm_adapter``: the node's EvmAdapter on that chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from localchain.evm import Anvil, DevAccount
from localchain.evm_deploy import Deployment, cached_dev_accounts, deploy, receipt_of


def accounts() -> list[DevAccount]:
    """anvil's dev accounts (derived once per process: it is slow)."""
    return list(cached_dev_accounts())


@dataclass
class EvmChain:
    anvil: Anvil
    deployment: Deployment
    w3: Any
    escrow: Any  # web3 Contract

    @property
    def accounts(self) -> list[DevAccount]:
        return accounts()

    @property
    def seller(self) -> DevAccount:
        return accounts()[1]

    @property
    def buyer(self) -> DevAccount:
        return accounts()[2]

    @property
    def arbitrator(self) -> DevAccount:
        return accounts()[3]

    @property
    def relayer(self) -> DevAccount:
        return accounts()[9]

    def token(self, symbol: str) -> Any:
        from node.chains.evm.artifacts import load

        return self.w3.eth.contract(
            address=self.deployment.token(symbol).address, abi=load("TestToken").abi
        )

    def transact(self, fn: Any, sender: str, value: int = 0) -> dict[str, Any]:
        """Send a contract call from an unlocked dev account; its receipt
        (asserts success)."""
        tx = fn.transact({"from": sender, "value": value})
        receipt = receipt_of(self.w3, tx)
        assert receipt["status"] == 1, receipt
        return dict(receipt)

    def escrow_id(self, seller: str, ref: bytes) -> str:
        return "0x" + bytes(self.escrow.functions.escrow_id(seller, ref).call()).hex()

    def open_native(
        self,
        ref: bytes,
        amount: int = 10**18,
        *,
        payment_window: int = 3600,
        deadline_in: int = 86_400,
    ) -> str:
        """Seller (#1) opens a native-coin escrow to buyer (#2), arbitrator (#3)."""
        now = self.w3.eth.get_block("latest")["timestamp"]
        fn = self.escrow.functions.open(
            ref,
            self.buyer.address,
            self.arbitrator.address,
            "0x0000000000000000000000000000000000000000",
            amount,
            payment_window,
            now + deadline_in,
        )
        self.transact(fn, self.seller.address, value=amount)
        return self.escrow_id(self.seller.address, ref)

    def open_token(self, ref: bytes, symbol: str, amount: int) -> str:
        token = self.token(symbol)
        self.transact(token.functions.approve(self.escrow.address, amount), self.seller.address)
        now = self.w3.eth.get_block("latest")["timestamp"]
        fn = self.escrow.functions.open(
            ref,
            self.buyer.address,
            self.arbitrator.address,
            token.address,
            amount,
            3600,
            now + 86_400,
        )
        self.transact(fn, self.seller.address)
        return self.escrow_id(self.seller.address, ref)

    def mark_paid(self, escrow_id: str) -> dict[str, Any]:
        return self.transact(self.escrow.functions.mark_paid(escrow_id), self.buyer.address)

    def release(self, escrow_id: str) -> dict[str, Any]:
        return self.transact(self.escrow.functions.release(escrow_id), self.seller.address)

    def adapter(self) -> Any:
        from node.chains.evm.adapter import EvmAdapter

        return EvmAdapter.connect(
            self.anvil.url,
            escrow_address=self.deployment.escrow,
            ws_url=self.anvil.ws_url,
            chain_id=self.deployment.chain_id,
        )


def make_ref(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture
def evm_chain(anvil: Anvil, tmp_path: Any) -> Iterator[EvmChain]:
    from web3 import Web3

    from node.chains.evm.artifacts import load

    dep = deploy(anvil.url, tmp_path / "deployment.json", ws_url=anvil.ws_url)
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
    escrow = w3.eth.contract(address=dep.escrow, abi=load("Escrow").abi)
    yield EvmChain(anvil=anvil, deployment=dep, w3=w3, escrow=escrow)


@pytest.fixture
def evm_adapter(evm_chain: EvmChain) -> Iterator[Any]:
    adapter = evm_chain.adapter()
    yield adapter
    adapter.rpc.close()


__all__ = ["EvmChain", "accounts", "make_ref"]
