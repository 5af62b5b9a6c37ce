"""The chain-adapter interface every chain family implements.

One adapter per chain family (EVM now; Bitcoin and Solana later) answers the
few questions the node asks a chain: where is the tip, what is the header of
block N, which escrow-relevant events happened in a block range, what is the
status of a transaction, and broadcast this one. Results are small frozen
values; a transaction's status is explicit (pending / confirmed(n) / failed /
unknown), never a bare bool or None. A feature a chain family does not have
raises :class:`NotSupportedError` instead of being faked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from node.errors import ChainError


class NotSupportedError(ChainError):
    """The chain family (or this backend) does not offer the feature asked for."""

    code = "not_supported"
    http_status = 501


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What reorg detection needs of a block. Hashes are lowercase 0x-hex."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class EscrowEvent:
    """One escrow-relevant event, ready for the mirror store.

    ``escrow_key`` is the chain's escrow identifier (EVM: the 0x-hex bytes32
    id; "" for contract-wide events such as a fee change). ``args`` is
    JSON-safe: amounts that may exceed 2**53 are decimal strings, small ints
    are ints, addresses are in the chain's canonical form."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    name: str
    escrow_key: str
    args: Mapping[str, Any]


class TxState(StrEnum):
    PENDING = "pending"  # known to the node/mempool, not in a block
    CONFIRMED = "confirmed"  # in a block, succeeded; see confirmations
    FAILED = "failed"  # in a block, reverted / failed; see reason
    UNKNOWN = "unknown"  # the chain does not know it (dropped, or never seen)


@dataclass(frozen=True, slots=True)
class TxStatus:
    state: TxState
    confirmations: int = 0
    block_number: int | None = None
    block_hash: str | None = None
    reason: str | None = None

    @classmethod
    def pending(cls) -> TxStatus:
        return cls(TxState.PENDING)

    @classmethod
    def unknown(cls) -> TxStatus:
        return cls(TxState.UNKNOWN)

    @classmethod
    def confirmed(cls, confirmations: int, block_number: int, block_hash: str) -> TxStatus:
        return cls(TxState.CONFIRMED, confirmations, block_number, block_hash)

    @classmethod
    def failed(
        cls, reason: str, confirmations: int = 0, block_number: int | None = None,
        block_hash: str | None = None,
    ) -> TxStatus:
        return cls(TxState.FAILED, confirmations, block_number, block_hash, reason)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events of a block range plus the headers of the blocks they are in."""

    from_block: int
    to_block: int
    events: Sequence[EscrowEvent]
    headers: Mapping[int, BlockHeader] = field(default_factory=dict)


@runtime_checkable
class ChainAdapter(Protocol):
    """What the watcher, the indexer and the relayer need of one chain."""

    @property
    def chain_key(self) -> str:
        """The key rows are stored under, e.g. ``"evm:31337"``."""
        ...

    def head(self) -> int:
        """The number of the chain's newest block."""
        ...

    def header(self, number: int) -> BlockHeader | None:
        """The header of block ``number``, None if the chain has no such block."""
        ...

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        """Headers of several blocks in one round trip where the chain allows;
        blocks the chain does not have are absent from the result."""
        ...

    def events(self, from_block: int, to_block: int) -> EventBatch:
        """Escrow-relevant events in ``[from_block, to_block]`` (inclusive), in
        chain order, with the headers of the blocks they are in."""
        ...

    def tx_status(self, txid: str) -> TxStatus:
        ...

    def broadcast(self, raw_tx: bytes) -> str:
        """Send a signed transaction; return its id. Idempotent: sending a
        transaction the chain already knows returns its id, not an error."""
        ...

    def subscribe_heads(self) -> HeadSubscription:
        """A push subscription to new heads; raises NotSupportedError where the
        backend has none (callers then poll)."""
        ...


class HeadSubscription(Protocol):
    """New-head notifications; the caller still polls as a backup."""

    def wait(self, timeout: float) -> bool:
        """Block until a new head was announced (True) or ``timeout`` passed."""
        ...

    def close(self) -> None:
        ...
