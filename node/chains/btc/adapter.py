"""The Bitcoin chain adapter: node/chains/base.py's interface over bitcoind
JSON-RPC.

Escrow-relevant events are found by reading whole blocks (``getblock``
verbosity 2) and looking every output's scriptPubKey up in an in-memory set
of watched escrow scripts, and every input's outpoint up in a map of escrow
outputs seen so far: the cost per block does not depend on how many escrows
are watched, and no address is ever polled.

Events (``escrow_key`` = the escrow address):

- ``Deposit`` {txid, vout, amount_sat, script}: an output paying an escrow;
- ``Spend`` {txid, spent: "txid:vout", path, outputs: [[script_hex, sat], ...]}:
  an input spending an escrow output; ``path`` is ``multisig`` (2-of-3
  witness) or ``timelock`` (the seller's CSV branch) read from the witness.

Block and transaction hashes are bitcoind's display hex (no 0x).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from embit.transaction import Transaction

from node.chains.base import (
    BlockHeader,
    EscrowEvent,
    EventBatch,
    HeadSubscription,
    NotSupportedError,
    TxStatus,
)
from node.chains.btc.rpc import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_VERIFY_ALREADY_IN_CHAIN,
    RPC_VERIFY_ERROR,
    RPC_VERIFY_REJECTED,
    BitcoinRpc,
    BtcBroadcastError,
    BtcRpcError,
    btc_to_sat,
)

GENESIS_PARENT = "00" * 32
MAX_SPEND_OUTPUTS = 8  # outputs recorded with a Spend (payouts have 1 or 2)
BLOCKS_PER_BATCH = 10  # getblock verbosity 2 calls per HTTP round trip


@dataclass(frozen=True)
class MempoolEntry:
    """A transaction waiting in the mempool: its own fee and vsize."""

    txid: str
    fee_sat: int
    vsize: int


def spend_path(witness: Sequence[str]) -> str:
    """Which branch of the escrow script a witness uses: the 2-of-3 branch is
    ``[<>, sig, sig, script]``, the timelock branch ``[sig, <>, <>, <>, script]``."""
    if len(witness) == 4 and witness[0] == "":
        return "multisig"
    if len(witness) == 5 and witness[1:4] == ["", "", ""]:
        return "timelock"
    return "other"


class BtcAdapter:
    """``ChainAdapter`` for one Bitcoin network behind one bitcoind RPC."""

    def __init__(self, rpc: BitcoinRpc, *, network: str) -> None:
        self.rpc = rpc
        self.network = network
        self._chain_key = f"btc:{network}"
        self._lock = threading.Lock()
        # script hex -> escrow address; "txid:vout" -> escrow address
        self._scripts: dict[str, str] = {}
        self._outpoints: dict[str, str] = {}

    @property
    def chain_key(self) -> str:
        return self._chain_key

    # -- watched set ------------------------------------------------------

    def watch(self, scripts: Iterable[tuple[str, str]]) -> None:
        """Add (script hex, address) pairs to the watched escrow scripts."""
        with self._lock:
            for script, address in scripts:
                self._scripts[script.lower()] = address

    def watch_outpoints(self, outpoints: Iterable[tuple[str, str]]) -> None:
        """Add ("txid:vout", address) pairs of known escrow outputs."""
        with self._lock:
            for op, address in outpoints:
                self._outpoints[op] = address

    @property
    def watched_count(self) -> int:
        return len(self._scripts)

    # -- heads --------------------------------------------------------------

    def head(self) -> int:
        return int(self.rpc.rpc("getblockcount"))

    def header(self, number: int) -> BlockHeader | None:
        return self.headers([number]).get(number)

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        nums = [n for n in numbers if n >= 0]
        hashes = self.rpc.batch_lenient([("getblockhash", [n]) for n in nums])
        known = [(n, h) for n, h in zip(nums, hashes, strict=True) if h]
        hdrs = self.rpc.batch_lenient([("getblockheader", [h, True]) for _n, h in known])
        out: dict[int, BlockHeader] = {}
        for (n, h), hdr in zip(known, hdrs, strict=True):
            if hdr is None or int(hdr["height"]) != n:
                continue
            out[n] = BlockHeader(
                number=n,
                hash=str(h),
                parent_hash=str(hdr.get("previousblockhash") or GENESIS_PARENT),
                timestamp=int(hdr["time"]),
            )
        return out

    # -- events ---------------------------------------------------------------

    def blocks(self, from_block: int, to_block: int) -> list[dict[str, Any]]:
        """Full blocks (verbosity 2) in [from_block, to_block]."""
        hashes = self.rpc.batch([("getblockhash", [n]) for n in range(from_block, to_block + 1)])
        out: list[dict[str, Any]] = []
        for i in range(0, len(hashes), BLOCKS_PER_BATCH):
            out.extend(self.rpc.batch([("getblock", [h, 2])
                                       for h in hashes[i : i + BLOCKS_PER_BATCH]]))
        return out

    def events(self, from_block: int, to_block: int) -> EventBatch:
        events: list[EscrowEvent] = []
        headers: dict[int, BlockHeader] = {}
        for block in self.blocks(from_block, to_block):
            found = self.scan_block(block)
            if found:
                n = int(block["height"])
                headers[n] = BlockHeader(
                    n, str(block["hash"]),
                    str(block.get("previousblockhash") or GENESIS_PARENT), int(block["time"]))
                events.extend(found)
        return EventBatch(from_block, to_block, events, headers)

    def scan_block(self, block: dict[str, Any]) -> list[EscrowEvent]:
        """Escrow deposits and spends in one verbosity-2 block, in block order."""
        scripts, outpoints = self._scripts, self._outpoints
        height = int(block["height"])
        bhash = str(block["hash"])
        found: list[EscrowEvent] = []
        for tx in block["tx"]:
            txid = tx["txid"]
            for vin in tx["vin"]:
                prev = vin.get("txid")
                if prev is None:  # coinbase
                    continue
                op = f"{prev}:{vin['vout']}"
                address = outpoints.get(op)
                if address is not None:
                    outs = [[o["scriptPubKey"]["hex"], btc_to_sat(o["value"])]
                            for o in tx["vout"][:MAX_SPEND_OUTPUTS]]
                    found.append(EscrowEvent(
                        height, bhash, txid, len(found), "Spend", address,
                        {"txid": txid, "spent": op,
                         "path": spend_path(vin.get("txinwitness") or []),
                         "outputs": outs},
                    ))
            for vout in tx["vout"]:
                spk = vout["scriptPubKey"]["hex"]
                address = scripts.get(spk)
                if address is not None:
                    n = int(vout["n"])
                    outpoints[f"{txid}:{n}"] = address
                    found.append(EscrowEvent(
                        height, bhash, txid, len(found), "Deposit", address,
                        {"txid": txid, "vout": n, "amount_sat": btc_to_sat(vout["value"]),
                         "script": spk},
                    ))
        return found

    # -- transactions -----------------------------------------------------------

    def tx_status(self, txid: str) -> TxStatus:
        try:
            tx = self.rpc.rpc("getrawtransaction", txid, 1)
        except BtcRpcError as exc:
            if exc.rpc_code == RPC_INVALID_ADDRESS_OR_KEY:
                return TxStatus.unknown()
            raise
        conf = int(tx.get("confirmations") or 0)
        if conf <= 0 or not tx.get("blockhash"):
            return TxStatus.pending()
        bh = str(tx["blockhash"])
        height = int(self.rpc.rpc("getblockheader", bh, True)["height"])
        return TxStatus.confirmed(conf, height, bh)

    def broadcast(self, raw_tx: bytes) -> str:
        txid = str(Transaction.parse(raw_tx).txid().hex())
        try:
            return str(self.rpc.rpc("sendrawtransaction", raw_tx.hex()))
        except BtcRpcError as exc:
            if exc.rpc_code == RPC_VERIFY_ALREADY_IN_CHAIN or "already" in exc.rpc_message:
                return txid
            if exc.rpc_code in (RPC_VERIFY_REJECTED, RPC_VERIFY_ERROR):
                raise BtcBroadcastError(f"the chain refused {txid}: {exc.rpc_message}",
                                        txid=txid, reason=exc.rpc_message) from None
            raise

    def estimate_feerate(self, *, target_blocks: int, floor_sat_vb: int,
                         cap_sat_vb: int | None = None) -> int:
        """estimatesmartfee in sat/vB (rounded up), at least ``floor_sat_vb``."""
        try:
            res = self.rpc.rpc("estimatesmartfee", target_blocks)
        except BtcRpcError:
            res = {}
        rate = res.get("feerate") if isinstance(res, dict) else None
        sat_vb = floor_sat_vb
        if rate is not None:
            sat_vb = max(floor_sat_vb, -(-btc_to_sat(rate) // 1000))
        if cap_sat_vb is not None:
            sat_vb = min(sat_vb, cap_sat_vb)
        return sat_vb

    def raw_transaction(self, txid: str) -> bytes:
        return bytes.fromhex(str(self.rpc.rpc("getrawtransaction", txid, 0)))

    def in_mempool(self, txid: str) -> bool:
        try:
            self.rpc.rpc("getmempoolentry", txid)
            return True
        except BtcRpcError:
            return False

    def mempool_entry(self, txid: str) -> MempoolEntry | None:
        """An unconfirmed transaction's fee and vsize (getmempoolentry), or
        None when it is not in the mempool (confirmed, dropped or unknown)."""
        try:
            e = self.rpc.rpc("getmempoolentry", txid)
        except BtcRpcError:
            return None
        fees = e.get("fees") or {}
        return MempoolEntry(txid=txid, fee_sat=btc_to_sat(fees.get("base", e.get("fee", 0))),
                            vsize=int(e["vsize"]))

    def subscribe_heads(self) -> HeadSubscription:
        raise NotSupportedError("the Bitcoin adapter polls (no ZMQ subscription)")
