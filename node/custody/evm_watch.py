"""The EVM deposit watcher: the escrow watcher's block-following logic
(node/chains/evm/watcher.py: reorg check, rollback, confirmations) under the
chain key ``custody:evm:<chain id>``, fed by an adapter that finds payments to
*all* deposit addresses per block range at once:

- native coin: the range's blocks with their transactions (one batched
  ``eth_getBlockByNumber(n, true)`` call) matched against the set of deposit
  addresses; each match's receipt must say success. Coins sent by a contract
  (internal transfers) are not seen: they need traces, which not every node
  serves (a documented limit);
- ERC-20: one ``eth_getLogs`` over the listed tokens for ``Transfer`` events
  whose recipient topic is a deposit address.

Transfers from the node's own wallets (``internal_senders``: the hot wallet's
gas top-ups) are movements between holdings, not deposits, and are skipped.

Events are ``Deposit`` with ``escrow_key`` = the deposit address and args
{txid, output, amount (decimal string), asset}; ``output`` is the log index
for tokens and -1 for the native coin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from node.chains.base import BlockHeader, EscrowEvent, EventBatch, NotSupportedError
from node.chains.evm.adapter import EvmAdapter
from node.chains.evm.watcher import EvmWatcher, OnConfirmed, StepResult
from node.db.models_custody import CustodyAddress

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
NATIVE_LOG_INDEX = 1_000_000  # events of native transfers: 1_000_000 + tx index
BLOCK_BATCH = 20


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


class CustodyEvmAdapter:
    """The parts of ``ChainAdapter`` the watcher uses, over an ``EvmAdapter``."""

    def __init__(
        self,
        evm: EvmAdapter,
        *,
        native: str,
        tokens: dict[str, str],
        internal_senders: Iterable[str] = (),
    ) -> None:
        self.evm = evm
        # The node's own wallets (the hot wallet tops deposit addresses up with
        # gas): what they send is a movement between holdings, not a deposit.
        self.internal = {a.lower() for a in internal_senders}
        self.native = native
        self.tokens = {to_checksum_address(a): s for a, s in tokens.items()}  # address -> symbol
        self._chain_key = f"custody:evm:{evm.chain_id}"
        self._lock = threading.Lock()
        self._watched: dict[str, str] = {}  # lowercase -> checksummed

    @property
    def chain_key(self) -> str:
        return self._chain_key

    def watch(self, addresses: Iterable[str]) -> None:
        with self._lock:
            for a in addresses:
                self._watched[a.lower()] = to_checksum_address(a)

    def head(self) -> int:
        return self.evm.head()

    def header(self, number: int) -> BlockHeader | None:
        return self.evm.header(number)

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        return self.evm.headers(numbers)

    def subscribe_heads(self) -> Any:
        raise NotSupportedError("the custody watcher polls")

    def events(self, from_block: int, to_block: int) -> EventBatch:
        watched = dict(self._watched)
        found: list[EscrowEvent] = []
        if not watched:
            return EventBatch(from_block, to_block, found, {})
        rpc = self.evm.rpc
        matches: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for lo in range(from_block, to_block + 1, BLOCK_BATCH):
            hi = min(to_block, lo + BLOCK_BATCH - 1)
            blocks = rpc.batch(
                [("eth_getBlockByNumber", (hex(n), True)) for n in range(lo, hi + 1)]
            )
            for block in blocks:
                for tx in (block or {}).get("transactions", []):
                    to = tx.get("to")
                    if (
                        to
                        and to.lower() in watched
                        and int(tx.get("value", "0x0"), 16) > 0
                        and str(tx.get("from", "")).lower() not in self.internal
                    ):
                        matches.append((block, tx))
        if matches:
            receipts = rpc.batch(
                [("eth_getTransactionReceipt", (tx["hash"],)) for _b, tx in matches]
            )
            for (block, tx), rcpt in zip(matches, receipts, strict=True):
                if rcpt is None or int(rcpt.get("status", "0x0"), 16) != 1:
                    continue
                txid = str(tx["hash"]).lower()
                found.append(
                    EscrowEvent(
                        int(block["number"], 16),
                        str(block["hash"]).lower(),
                        txid,
                        NATIVE_LOG_INDEX + int(tx["transactionIndex"], 16),
                        "Deposit",
                        watched[tx["to"].lower()],
                        {
                            "txid": txid,
                            "output": -1,
                            "amount": str(int(tx["value"], 16)),
                            "asset": self.native,
                        },
                    )
                )
        if self.tokens:
            logs = rpc.call(
                "eth_getLogs",
                {
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "address": list(self.tokens),
                    "topics": [TRANSFER, None, [_topic(a) for a in watched]],
                },
            )
            for lg in logs:
                if lg.get("removed"):
                    continue
                to = "0x" + lg["topics"][2][-40:]
                amount = int(lg["data"], 16) if lg["data"] not in ("0x", "") else 0
                sender = "0x" + lg["topics"][1][-40:]
                if to.lower() not in watched or amount == 0 or sender.lower() in self.internal:
                    continue
                txid = str(lg["transactionHash"]).lower()
                idx = int(lg["logIndex"], 16)
                found.append(
                    EscrowEvent(
                        int(lg["blockNumber"], 16),
                        str(lg["blockHash"]).lower(),
                        txid,
                        idx,
                        "Deposit",
                        watched[to.lower()],
                        {
                            "txid": txid,
                            "output": idx,
                            "amount": str(amount),
                            "asset": self.tokens[to_checksum_address(lg["address"])],
                        },
                    )
                )
        found.sort(key=lambda e: (e.block_number, e.log_index))
        return EventBatch(from_block, to_block, found, {})


class CustodyEvmWatcher(EvmWatcher):
    adapter: CustodyEvmAdapter  # type: ignore[assignment]

    def __init__(
        self,
        adapter: CustodyEvmAdapter,
        sessions: sessionmaker[Session],
        *,
        start_block: int,
        confirmations: int,
        finality_depth: int,
        log_range: int,
        poll_interval_s: float,
        on_confirmed: OnConfirmed,
    ) -> None:
        super().__init__(
            adapter,  # type: ignore[arg-type]
            sessions,
            start_block=start_block,
            confirmations=confirmations,
            finality_depth=finality_depth,
            log_range=log_range,
            poll_interval_s=poll_interval_s,
            on_confirmed=on_confirmed,
            use_websocket=False,
        )
        self._last_address_id = 0

    def refresh_watched(self, s: Session) -> int:
        rows = s.execute(
            select(CustodyAddress.id, CustodyAddress.address)
            .where(CustodyAddress.chain == "evm", CustodyAddress.id > self._last_address_id)
            .order_by(CustodyAddress.id)
        ).all()
        if rows:
            self.adapter.watch(addr for _i, addr in rows)
            self._last_address_id = int(rows[-1][0])
        return len(rows)

    def _step(self, s: Session, *args: Any, **kw: Any) -> StepResult | str:
        self.refresh_watched(s)
        return super()._step(s, *args, **kw)
