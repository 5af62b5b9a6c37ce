"""The EVM signer interface and its software-key implementation.

This is the only module that touches EVM private keys; everything else holds
a ``EvmSigner`` and asks it to sign. Other implementations (hardware wallet,
remote signer, KMS) implement the same Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from wallets.errors import SigningError
from wallets.evm.eip712 import TypedData


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes
    hash: str  # 0x-hex
    nonce: int


@runtime_checkable
class EvmSigner(Protocol):
    @property
    def address(self) -> str:
        """The signer's checksummed address."""
        ...

    def sign_typed_data(self, typed: TypedData) -> bytes:
        """A 65-byte r || s || v signature (v 27/28, low s) over the EIP-712 digest."""
        ...

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        """Sign an EIP-1559 transaction dict (chainId, nonce, to, data, value,
        gas, maxFeePerGas, maxPriorityFeePerGas)."""
        ...


class SoftwareSigner:
    """A private key held in process memory (dev, tests, a node's hot wallet
    loaded from an encrypted keystore)."""

    def __init__(self, private_key: str | bytes) -> None:
        from eth_account import Account

        try:
            self._account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            raise SigningError("not a valid secp256k1 private key") from exc

    def __repr__(self) -> str:  # never print the key
        return f"SoftwareSigner({self.address})"

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_typed_data(self, typed: TypedData) -> bytes:
        signed = self._account.sign_message(typed.signable)
        return bytes(signed.signature)

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        if "nonce" not in tx or "chainId" not in tx:
            raise SigningError("a transaction needs an explicit nonce and chainId")
        signed = self._account.sign_transaction(tx)
        return SignedTransaction(
            raw=bytes(signed.raw_transaction), hash="0x" + bytes(signed.hash).hex(),
            nonce=int(tx["nonce"]),
        )
