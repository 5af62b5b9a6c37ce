"""The Solana chain adapter: node/chains/base.py's interface as far as it fits.

Solana has slots, not a block-hash chain the node follows for reorgs: the
watcher (``watcher.py``) reads escrow token accounts at a commitment instead of
logs of blocks, so ``header``/``headers``/``events`` raise ``NotSupportedError``.
``head`` is the slot at the configured commitment; ``tx_status`` maps
``getSignatureStatuses``; ``broadcast`` sends a signed transaction."""

from __future__ import annotations

from collections.abc import Sequence

from solana.rpc.commitment import Commitment
from solders.transaction import Transaction

from node.chains.base import BlockHeader, EventBatch, HeadSubscription, NotSupportedError, TxStatus
from node.chains.sol.client import SolClient

_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}


class SolAdapter:
    def __init__(self, client: SolClient, *, cluster: str, commitment: str = "finalized") -> None:
        self.client = client
        self.cluster = cluster
        self.commitment = commitment
        self._chain_key = f"sol:{cluster}"

    @property
    def chain_key(self) -> str:
        return self._chain_key

    @property
    def commitment_level(self) -> Commitment:
        return Commitment(self.commitment)

    def head(self) -> int:
        return self.client.slot(self.commitment_level)

    def header(self, number: int) -> BlockHeader | None:  # noqa: ARG002
        raise NotSupportedError("the Solana watcher follows accounts, not block headers")

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:  # noqa: ARG002
        raise NotSupportedError("the Solana watcher follows accounts, not block headers")

    def events(self, from_block: int, to_block: int) -> EventBatch:  # noqa: ARG002
        raise NotSupportedError("Solana escrows have no program logs: watch the accounts")

    def tx_status(self, txid: str) -> TxStatus:
        """CONFIRMED once at the adapter's commitment (confirmations = 1), PENDING
        below it, FAILED if it executed with an error, UNKNOWN if never seen or
        dropped (an expired blockhash means it never will be)."""
        status = self.client.statuses([txid])[0]
        if status is None:
            return TxStatus.unknown()
        level = (
            "processed"
            if status.confirmation_status is None
            else str(status.confirmation_status).rsplit(".", 1)[-1].lower()
        )
        if status.err is not None:
            return TxStatus.failed(str(status.err), block_number=int(status.slot))
        if _RANK[level] >= _RANK[self.commitment]:
            return TxStatus.confirmed(1, int(status.slot), "")
        return TxStatus.pending()

    def broadcast(self, raw_tx: bytes) -> str:
        """Send; a transaction the chain already has is answered with its id."""
        tx = Transaction.from_bytes(raw_tx)
        txid = str(tx.signatures[0])
        if self.client.statuses([txid])[0] is not None:
            return txid
        return self.client.send(raw_tx, preflight_commitment=Commitment("processed"))

    def subscribe_heads(self) -> HeadSubscription:
        raise NotSupportedError("the Solana watcher polls")

