"""The EVM chain adapter: node.chains.base.ChainAdapter over JSON-RPC.

Reads the Escrow contract's logs with one ``eth_getLogs`` per block range
(splitting the range when the provider refuses it as too large), decodes them
with the precompiled decoders of ``events.py``, fetches headers in JSON-RPC
batches, and follows new heads over a websocket ``eth_subscribe newHeads``
when a ws URL is configured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eth_hash.auto import keccak

from node.chains.base import (
    BlockHeader,
    EscrowEvent,
    EventBatch,
    NotSupportedError,
    TxStatus,
)
from node.chains.evm.events import (
    STORED_TOPICS,
    DecodedLog,
    decode_logs,
    decode_logs_for_store,
)
from node.chains.evm.rpc import JsonRpcClient, RpcError

log = logging.getLogger(__name__)

HEADER_BATCH = 500
# Messages providers use to refuse an eth_getLogs range as too large.
_TOO_LARGE = ("too many", "range", "limit", "exceed", "response size", "query returned more")


def chain_key(chain_id: int) -> str:
    return f"evm:{chain_id}"


def _header(block: dict[str, Any]) -> BlockHeader:
    return BlockHeader(
        number=int(block["number"], 16),
        hash=block["hash"],
        parent_hash=block["parentHash"],
        timestamp=int(block["timestamp"], 16),
    )


def to_event(d: DecodedLog) -> EscrowEvent:
    return EscrowEvent(
        block_number=d.block_number,
        block_hash=d.block_hash,
        tx_hash=d.tx_hash,
        log_index=d.log_index,
        name=d.name,
        escrow_key=d.escrow_id or "",
        args=d.json_args(),
    )


@dataclass(frozen=True, slots=True)
class FeeQuote:
    base_fee: int
    max_priority_fee: int

    def max_fee(self, headroom: int = 2) -> int:
        return self.base_fee * headroom + self.max_priority_fee


class EvmAdapter:
    """One EVM chain, one Escrow contract."""

    def __init__(
        self,
        rpc: JsonRpcClient,
        *,
        chain_id: int,
        escrow_address: str,
        ws_url: str | None = None,
    ) -> None:
        self.rpc = rpc
        self.chain_id = chain_id
        self.escrow_address = escrow_address
        self.ws_url = ws_url
        self._key = chain_key(chain_id)

    @classmethod
    def connect(
        cls, url: str, *, escrow_address: str, ws_url: str | None = None,
        chain_id: int | None = None,
    ) -> EvmAdapter:
        """An adapter for the node at ``url``; checks ``chain_id`` if given."""
        rpc = JsonRpcClient(url)
        actual = int(rpc.call("eth_chainId"), 16)
        if chain_id is not None and actual != chain_id:
            raise RpcError(0, f"chain id is {actual}, configured {chain_id}", method="eth_chainId")
        return cls(rpc, chain_id=actual, escrow_address=escrow_address, ws_url=ws_url)

    @property
    def chain_key(self) -> str:
        return self._key

    # --- reading ------------------------------------------------------

    def head(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def header(self, number: int) -> BlockHeader | None:
        block = self.rpc.call("eth_getBlockByNumber", hex(number), False)
        return _header(block) if block else None

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        out: dict[int, BlockHeader] = {}
        for i in range(0, len(numbers), HEADER_BATCH):
            chunk = numbers[i : i + HEADER_BATCH]
            blocks = self.rpc.batch([("eth_getBlockByNumber", (hex(n), False)) for n in chunk])
            for block in blocks:
                if block:
                    h = _header(block)
                    out[h.number] = h
        return out

    def raw_logs(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """The Escrow contract's stored-event logs in the range, one
        eth_getLogs (split in halves while the provider says it is too big)."""
        try:
            logs: list[dict[str, Any]] = self.rpc.call(
                "eth_getLogs",
                {
                    "address": self.escrow_address,
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": [STORED_TOPICS],
                },
            )
            return logs
        except RpcError as exc:
            too_large = any(s in exc.rpc_message.lower() for s in _TOO_LARGE)
            if not too_large or from_block >= to_block:
                raise
            mid = (from_block + to_block) // 2
            log.info("eth_getLogs %d-%d refused (%s); splitting", from_block, to_block, exc)
            return self.raw_logs(from_block, mid) + self.raw_logs(mid + 1, to_block)

    def decoded_logs(self, from_block: int, to_block: int) -> list[DecodedLog]:
        return [d for d in decode_logs(self.raw_logs(from_block, to_block)) if not d.removed]

    def events(self, from_block: int, to_block: int) -> EventBatch:
        """The stored events of the range, decoded straight to rows."""
        rows = decode_logs_for_store(self.raw_logs(from_block, to_block))
        return EventBatch(from_block, to_block, rows)

    def tx_status(self, txid: str) -> TxStatus:
        receipt, head = self.rpc.batch(
            [("eth_getTransactionReceipt", (txid,)), ("eth_blockNumber", ())]
        )
        if receipt is None or receipt.get("blockNumber") is None:
            tx = self.rpc.call("eth_getTransactionByHash", txid)
            return TxStatus.pending() if tx is not None else TxStatus.unknown()
        number = int(receipt["blockNumber"], 16)
        confs = max(0, int(head, 16) - number + 1)
        if int(receipt.get("status", "0x1"), 16) == 1:
            return TxStatus.confirmed(confs, number, receipt["blockHash"])
        return TxStatus.failed("reverted", confs, number, receipt["blockHash"])

    def receipt(self, txid: str) -> dict[str, Any] | None:
        r: dict[str, Any] | None = self.rpc.call("eth_getTransactionReceipt", txid)
        return r

    # --- writing ------------------------------------------------------

    def broadcast(self, raw_tx: bytes) -> str:
        txid = "0x" + keccak(raw_tx).hex()
        try:
            sent = self.rpc.call("eth_sendRawTransaction", "0x" + raw_tx.hex())
        except RpcError as exc:
            msg = exc.rpc_message.lower()
            if "already known" in msg or "known transaction" in msg or "already imported" in msg:
                return txid
            raise
        return str(sent)

    # --- EVM specifics used by the relayer -----------------------------

    def nonce(self, address: str, block: str = "pending") -> int:
        return int(self.rpc.call("eth_getTransactionCount", address, block), 16)

    def fee_quote(self) -> FeeQuote:
        block, tip = self.rpc.batch(
            [("eth_getBlockByNumber", ("latest", False)), ("eth_maxPriorityFeePerGas", ())]
        )
        return FeeQuote(int(block.get("baseFeePerGas", "0x0"), 16), int(tip, 16))

    def call(self, tx: dict[str, Any], block: str = "latest") -> str:
        return str(self.rpc.call("eth_call", tx, block))

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        return int(self.rpc.call("eth_estimateGas", tx), 16)

    def subscribe_heads(self) -> WsHeadSubscription:
        if not self.ws_url:
            raise NotSupportedError("no websocket URL configured: poll for new heads")
        return WsHeadSubscription(self.ws_url)


def revert_reason(exc: RpcError) -> str:
    """The revert string of an eth_call / eth_estimateGas error, when the
    node returned one (Error(string) ABI-encoded in ``data``)."""
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x08c379a0") and len(data) >= 138:
        try:
            raw = bytes.fromhex(data[10:])
            length = int.from_bytes(raw[32:64], "big")
            return raw[64 : 64 + length].decode("utf-8", "replace")
        except ValueError:
            pass
    msg = exc.rpc_message
    marker = "execution reverted"
    if marker in msg:
        rest = msg.split(marker, 1)[1].lstrip(": ").strip()
        return rest or msg
    return msg


class WsHeadSubscription:
    """``eth_subscribe newHeads`` on a websocket, in a daemon thread that only
    wakes the watcher; reconnects with backoff. The watcher polls anyway."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self._event = threading.Event()
        self._stop = threading.Event()
        self._conn: Any = None
        self.connected = threading.Event()
        self.latest: BlockHeader | None = None
        self._thread = threading.Thread(target=self._run, name="evm-newheads", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from websockets.sync.client import connect

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with connect(self.ws_url, proxy=None, open_timeout=5, max_size=None) as ws:
                    self._conn = ws
                    ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}).decode())
                    self.connected.set()
                    backoff = 0.2
                    for message in ws:
                        self._note(message)
                        self._event.set()
                        if self._stop.is_set():
                            break
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                if self._stop.is_set():
                    break
                log.warning("newHeads websocket %s: %r; reconnecting", self.ws_url, exc)
            finally:
                self.connected.clear()
                self._conn = None
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def _note(self, message: str | bytes) -> None:
        """Keep the newest head the subscription announced (its header spares
        the watcher two round trips on the common path)."""
        try:
            head = orjson.loads(message)["params"]["result"]
            header = _header(head)
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            return  # the subscription's own reply, or something unexpected
        self.latest = header

    def wait(self, timeout: float) -> bool:
        fired = self._event.wait(timeout)
        self._event.clear()
        return fired

    def close(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing anyway
                pass
        self._thread.join(timeout=5)
