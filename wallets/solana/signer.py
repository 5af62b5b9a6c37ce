"""Keys behind one interface, and partial signing of serialized transactions.

A :class:`Signer` has a public key and signs message bytes; nothing else in
``wallets.solana`` touches key material. :class:`SoftwareSigner` wraps a solders
``Keypair``; a hardware or remote signer implements the same two methods.

Transactions travel between wallets as base64 of the legacy wire format (what
Phantom's ``signTransaction`` takes and returns): :func:`encode_transaction`,
:func:`decode_transaction`, :func:`sign_partially`, :func:`missing_signers`,
:func:`require_complete`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol, runtime_checkable

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from wallets.solana.errors import IncompleteTransactionError, SigningError, TransactionDecodeError

_NO_SIGNATURE = Signature.default()


@runtime_checkable
class Signer(Protocol):
    """A Solana ed25519 key that can sign transaction messages."""

    def pubkey(self) -> Pubkey: ...

    def sign_message(self, message: bytes) -> Signature: ...


class SoftwareSigner:
    """A :class:`Signer` over an in-memory solders ``Keypair``.

    The keypair is not exposed; ``repr`` shows the public key only.
    """

    __slots__ = ("_keypair",)

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair

    @classmethod
    def generate(cls) -> SoftwareSigner:
        return cls(Keypair())

    @classmethod
    def from_seed(cls, seed: bytes) -> SoftwareSigner:
        """From a 32-byte ed25519 seed (e.g. the output of the node's key derivation)."""
        if len(seed) != 32:
            raise SigningError("an ed25519 seed is 32 bytes", code="bad_key_material")
        return cls(Keypair.from_seed(seed))

    def pubkey(self) -> Pubkey:
        return self._keypair.pubkey()

    def sign_message(self, message: bytes) -> Signature:
        return self._keypair.sign_message(message)

    def __repr__(self) -> str:
        return f"SoftwareSigner({self.pubkey()})"


def encode_transaction(tx: Transaction) -> str:
    """Base64 of the transaction's wire bytes (signatures, missing ones zeroed, + message)."""
    return base64.b64encode(bytes(tx)).decode("ascii")


def decode_transaction(data: str | bytes) -> Transaction:
    """Parse base64 (str) or raw wire bytes into a legacy ``Transaction``.

    Versioned (v0) transactions and garbage raise :class:`TransactionDecodeError`.
    """
    raw: bytes
    if isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TransactionDecodeError("transaction is not valid base64") from exc
    else:
        raw = data
    try:
        tx = Transaction.from_bytes(raw)
    except Exception as exc:  # solders raises its own ValueError subclasses
        raise TransactionDecodeError("not a legacy Solana transaction", reason=str(exc)) from exc
    if bytes(tx) != raw:
        raise TransactionDecodeError("transaction bytes do not round-trip (trailing data?)")
    return tx


def required_signers(tx: Transaction) -> list[Pubkey]:
    """The keys that must sign, in signature order (the fee payer first)."""
    n = tx.message.header.num_required_signatures
    return list(tx.message.account_keys[:n])


def missing_signers(tx: Transaction) -> list[Pubkey]:
    """Required signers whose signature slot is still empty."""
    keys = required_signers(tx)
    sigs = tx.signatures
    return [key for key, sig in zip(keys, sigs, strict=True) if sig == _NO_SIGNATURE]


def sign_partially(tx: Transaction, signer: Signer) -> Transaction:
    """Return a copy of ``tx`` with ``signer``'s signature added; other signatures kept.

    The blockhash is never changed here (a new blockhash means a rebuilt transaction
    from the same intent, see ``payout.build_payout_transaction``).
    """
    keys = required_signers(tx)
    pubkey = signer.pubkey()
    if pubkey not in keys:
        raise SigningError(
            "key is not a required signer of this transaction",
            code="signer_not_required",
            signer=str(pubkey),
        )
    message_bytes = bytes(tx.message_data())
    signature = signer.sign_message(message_bytes)
    if not signature.verify(pubkey, message_bytes):
        raise SigningError("signer produced an invalid signature", code="bad_signature")
    sigs = list(tx.signatures)
    sigs[keys.index(pubkey)] = signature
    return Transaction.populate(tx.message, sigs)


def verify_present_signatures(tx: Transaction) -> None:
    """Every signature that is present must verify against the message."""
    message_bytes = bytes(tx.message_data())
    for key, sig in zip(required_signers(tx), tx.signatures, strict=True):
        if sig != _NO_SIGNATURE and not sig.verify(key, message_bytes):
            raise SigningError(
                "a signature does not match the message", code="bad_signature", signer=str(key)
            )


def require_complete(tx: Transaction) -> Transaction:
    """Raise :class:`IncompleteTransactionError` unless every required signature is present
    and valid; return ``tx`` for chaining (ready to broadcast)."""
    missing = missing_signers(tx)
    if missing:
        raise IncompleteTransactionError(
            "transaction is missing signatures", missing=[str(k) for k in missing]
        )
    verify_present_signatures(tx)
    return tx
