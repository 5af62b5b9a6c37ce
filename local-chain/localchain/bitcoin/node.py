"""The regtest node: libbitcoinkernel decides consensus, this module keeps the
block store, UTXO set, transaction index and mempool in step with it.

Everything here runs under one lock (``Node.lock``): the RPC server calls in
from many threads, the kernel's chainstate manager is used from one at a time.

How chain changes reach the UTXO set: the kernel's validation callbacks
(``block_connected`` / ``block_disconnected`` / ``block_checked``) only record
events (exceptions inside callbacks would be swallowed); after each
``process_block`` the node applies them in order, with its own undo data, and
checks that its tip is the kernel's tip.

libbitcoinkernel has no invalidateblock: ``invalidate_block`` marks the block
and its descendants invalid here, then rebuilds the kernel's chainstate in a
fresh directory (a new *generation*) from the stored blocks that are still
valid, so the kernel's best chain is again the best valid chain."""

from __future__ import annotations

import collections
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pbk
from embit.transaction import Transaction

from localchain.bitcoin import consensus as C
from localchain.bitcoin import kernelobj
from localchain.bitcoin import scripts as S
from localchain.bitcoin.errors import RPC_MISC_ERROR, RPCError
from localchain.bitcoin.mempool import Mempool, Rejection
from localchain.bitcoin.store import INVALIDATED, OK, REJECTED, BlockInfo, Coin, Outpoint, Store

log = logging.getLogger("localchain.bitcoin")

_kernel_log: collections.deque[str] = collections.deque(maxlen=200)
_kernel_log_conn: pbk.LoggingConnection | None = None


def _kernel_logging() -> None:
    global _kernel_log_conn
    if _kernel_log_conn is None:
        _kernel_log_conn = pbk.LoggingConnection(_on_kernel_log)


def _on_kernel_log(msg: str) -> None:
    _kernel_log.append(msg)
    if "UpdateTip" not in msg:
        log.debug("kernel: %s", msg.rstrip())


@dataclass
class Event:
    kind: str  # "connected" | "disconnected" | "checked"
    hash: str
    valid: bool = True
    result: str = ""


class Kernel:
    """One libbitcoinkernel chainstate (one generation directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[Event] = []
        self.recording = True
        callbacks = pbk.ValidationInterfaceCallbacks(
            block_checked=self._checked,
            block_connected=self._connected,
            block_disconnected=self._disconnected,
        )
        self._callbacks = callbacks
        self.chainman = pbk.load_chainman(path, pbk.ChainType.REGTEST, callbacks)

    def _checked(self, _u: object, block: pbk.Block, state: pbk.BlockValidationState) -> None:
        self.events.append(
            Event(
                "checked",
                str(block.block_hash),
                state.validation_mode == pbk.ValidationMode.VALID,
                state.block_validation_result.name,
            )
        )

    def _connected(self, _u: object, _block: pbk.Block, entry: pbk.BlockTreeEntry) -> None:
        if self.recording:
            self.events.append(Event("connected", str(entry.block_hash)))

    def _disconnected(self, _u: object, _block: pbk.Block, entry: pbk.BlockTreeEntry) -> None:
        if self.recording:
            self.events.append(Event("disconnected", str(entry.block_hash)))

    def tip(self) -> tuple[int, str]:
        chain = self.chainman.get_active_chain()
        h = chain.height
        return h, str(chain.block_tree_entries[h].block_hash)

    def process(self, raw: bytes) -> None:
        self.chainman.process_block(kernelobj.block(raw))

    def knows(self, block_hash: str) -> bool:
        return pbk.BlockHash(bytes.fromhex(block_hash)[::-1]) in self.chainman.block_tree_entries

    def read_block(self, block_hash: str) -> bytes:
        entry = self.chainman.block_tree_entries[pbk.BlockHash(bytes.fromhex(block_hash)[::-1])]
        return bytes(self.chainman.blocks[entry])

    def close(self) -> None:
        del self.chainman


class Node:
    def __init__(
        self,
        datadir: Path,
        *,
        min_relay_fee: int = 1000,
        incremental_fee: int = 1000,
        block_min_fee: int = 0,
    ) -> None:
        _kernel_logging()
        # sat/kvB a transaction's package (it and its unmined ancestors) must pay
        # to enter a block template (bitcoind's -blockmintxfee); 0: every tx
        self.block_min_fee = block_min_fee
        self.datadir = Path(datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.started = time.time()
        self.store = Store(self.datadir / "localchain.sqlite")
        self.index: dict[str, BlockInfo] = {b.hash: b for b in self.store.load_index()}
        self.children: dict[str, set[str]] = collections.defaultdict(set)
        for b in self.index.values():
            if b.prev is not None:
                self.children[b.prev].add(b.hash)
        self._seq = max((b.seq for b in self.index.values()), default=0)
        self.utxos: dict[Outpoint, Coin] = self.store.load_utxos()
        self.txindex: dict[str, str] = self.store.load_txindex()
        self.active: list[str] = []  # height -> hash, our view of the active chain
        self.mempool = Mempool(self, min_relay_fee=min_relay_fee, incremental_fee=incremental_fee)
        self.disconnected_txs: list[bytes] = []
        self._last_result = ""  # block_checked result of the last processed block
        self._parsed: collections.OrderedDict[str, tuple[C.Header, list[C.ParsedTx]]] = (
            collections.OrderedDict()
        )
        self.generation = int(self.store.get_meta("kernel_generation") or "0")
        self.kernel = Kernel(self._kernel_dir(self.generation))
        self._start()

    # ------------------------------------------------------------------ paths
    def _kernel_dir(self, generation: int) -> Path:
        return self.datadir / "kernel" / f"gen-{generation}"

    # ---------------------------------------------------------------- startup
    def _start(self) -> None:
        self.kernel.events.clear()
        # the genesis block: known to the kernel, stored by us for getblock
        genesis_raw = self.kernel.read_block(C.REGTEST_GENESIS_HASH)
        if C.REGTEST_GENESIS_HASH not in self.index:
            self._store_block(genesis_raw, OK)
        tip_meta = self.store.get_meta("tip")
        k_height, k_tip = self.kernel.tip()
        if tip_meta != k_tip or not self._active_from_index(k_tip):
            if tip_meta is not None:
                log.warning(
                    "chain state (%s) differs from kernel tip (%s): rebuilding", tip_meta, k_tip
                )
            # our blocks above the kernel's tip (kernel lost them): resubmit
            if tip_meta in self.index and self._descends(tip_meta, k_tip):
                for h in self._path(k_tip, tip_meta):
                    raw = self.store.raw_block(h)
                    if raw is not None:
                        self.kernel.process(raw)
                k_height, k_tip = self.kernel.tip()
            self._rebuild_chainstate()
        self.kernel.events.clear()
        self._load_mempool()
        self.store.commit()
        log.info(
            "started at height %d tip %s (kernel generation %d)",
            len(self.active) - 1,
            self.tip_hash(),
            self.generation,
        )

    def _active_from_index(self, tip: str) -> bool:
        chain: list[str] = []
        h: str | None = tip
        while h is not None:
            info = self.index.get(h)
            if info is None:
                return False
            chain.append(h)
            h = info.prev
        self.active = chain[::-1]
        return True

    def _descends(self, block: str, ancestor: str) -> bool:
        info = self.index.get(block)
        anc = self.index.get(ancestor)
        if info is None or anc is None:
            return False
        while info.height > anc.height and info.prev is not None:
            info = self.index[info.prev]
        return info.hash == ancestor

    def _path(self, ancestor: str, block: str) -> list[str]:
        """Blocks after ``ancestor`` up to ``block``, in order."""
        out: list[str] = []
        h: str | None = block
        while h is not None and h != ancestor:
            out.append(h)
            h = self.index[h].prev
        return out[::-1]

    def _rebuild_chainstate(self) -> None:
        """Recompute UTXO set and txindex from the kernel's active chain."""
        self.store.wipe_chainstate()
        self.utxos.clear()
        self.txindex.clear()
        chain = self.kernel.chainman.get_active_chain()
        hashes = [str(e.block_hash) for e in chain.block_tree_entries]
        self.active = []
        for h in hashes:
            raw = self.store.raw_block(h)
            if raw is None:
                raw = self.kernel.read_block(h)
                self._store_block(raw, OK)
            self._connect(h, raw)
        self.store.set_meta("tip", self.tip_hash())

    def _load_mempool(self) -> None:
        path = self.datadir / "mempool.dat"
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").split():
            with contextlib.suppress(Rejection):
                self.mempool.accept(bytes.fromhex(line), bypass_fee=True)
        path.unlink()

    def close(self) -> None:
        with self.lock:
            (self.datadir / "mempool.dat").write_text(
                "\n".join(e.raw.hex() for e in self.mempool.ordered()), encoding="utf-8"
            )
            self.store.commit()
            self.store.close()
            self.kernel.close()

    # ---------------------------------------------------------- chain queries
    def tip_height(self) -> int:
        return len(self.active) - 1

    def tip_hash(self) -> str:
        return self.active[-1]

    def tip_info(self) -> BlockInfo:
        return self.index[self.active[-1]]

    def utxo(self, outpoint: Outpoint) -> Coin | None:
        return self.utxos.get(outpoint)

    def median_time_past(self, height: int) -> int:
        return self.mtp_of(self.active[min(height, len(self.active) - 1)])

    def mtp_of(self, block_hash: str) -> int:
        times: list[int] = []
        h: str | None = block_hash
        while h is not None and len(times) < 11:
            info = self.index[h]
            times.append(info.time)
            h = info.prev
        times.sort()
        return times[len(times) // 2]

    def in_active_chain(self, block_hash: str) -> bool:
        info = self.index.get(block_hash)
        return (
            info is not None
            and info.height < len(self.active)
            and self.active[info.height] == block_hash
        )

    def parsed_block(self, block_hash: str) -> tuple[C.Header, list[C.ParsedTx]]:
        """The block's header and transactions (parsed once, LRU-cached)."""
        hit = self._parsed.get(block_hash)
        if hit is not None:
            self._parsed.move_to_end(block_hash)
            return hit
        parsed = C.parse_block_txs(self.raw_block(block_hash))
        self._cache_parsed(block_hash, parsed)
        return parsed

    def _cache_parsed(self, block_hash: str, parsed: tuple[C.Header, list[C.ParsedTx]]) -> None:
        self._parsed[block_hash] = parsed
        while len(self._parsed) > 256:
            self._parsed.popitem(last=False)

    def raw_block(self, block_hash: str) -> bytes:
        raw = self.store.raw_block(block_hash)
        if raw is None:
            raise KeyError(block_hash)
        return raw

    def block_status(self, block_hash: str) -> int:
        """OK, or INVALIDATED/REJECTED for the block or any ancestor."""
        h: str | None = block_hash
        while h is not None:
            info = self.index[h]
            if info.status != OK:
                return info.status
            if self.in_active_chain(h):
                return OK
            h = info.prev
        return OK

    # ------------------------------------------------------- block acceptance
    def _store_block(self, raw: bytes, status: int) -> BlockInfo:
        header, txs = C.parse_block_txs(raw)
        block_hash = header.hash()[::-1].hex()
        self._cache_parsed(block_hash, (header, txs))
        prev = header.prev_hash[::-1].hex() if any(header.prev_hash) else None
        height = 0 if prev is None else self.index[prev].height + 1
        stripped = 80 + len(_compact(len(txs))) + sum(len(t.stripped) for t in txs)
        self._seq += 1
        info = BlockInfo(
            hash=block_hash,
            height=height,
            prev=prev,
            version=header.version,
            merkle=header.merkle_root[::-1].hex(),
            time=header.time,
            bits=header.bits,
            nonce=header.nonce,
            n_tx=len(txs),
            size=len(raw),
            stripped_size=stripped,
            weight=stripped * 3 + len(raw),
            status=status,
            seq=self._seq,
        )
        self.index[block_hash] = info
        if prev is not None:
            self.children[prev].add(block_hash)
        self.store.put_block(info, raw)
        return info

    def submit_block(self, raw: bytes) -> str | None:
        """BIP22 result: None when accepted (active or valid fork), else a reason."""
        with self.lock:
            try:
                header, _txs = C.parse_block(raw)
            except Exception as exc:
                raise RPCError(-22, "Block decode failed") from exc
            block_hash = header.hash()[::-1].hex()
            prev = header.prev_hash[::-1].hex()
            known = self.index.get(block_hash)
            if known is not None:
                if known.status in (REJECTED, INVALIDATED):
                    return "duplicate-invalid"
                if self.kernel.knows(block_hash):
                    return "duplicate"
            if prev not in self.index:
                return "prev-blk-not-found"
            if self.block_status(prev) != OK:
                return "bad-prevblk"
            if known is None:
                self._store_block(raw, OK)
            reason = self._process(raw, block_hash)
            if reason is not None:
                if self.kernel.knows(block_hash) and self._last_result != "MUTATED":
                    self._mark(block_hash, REJECTED)  # the kernel keeps it as invalid
                else:
                    self._forget(block_hash)  # e.g. mutated or high-hash: never stored
            self._after_chain_change()
            return reason

    def _process(self, raw: bytes, block_hash: str) -> str | None:
        self.kernel.events.clear()
        _kernel_log.clear()
        failed = False
        try:
            self.kernel.process(raw)
        except pbk.ProcessBlockException:
            failed = True
        except RuntimeError:
            failed = True
        events = list(self.kernel.events)
        self.kernel.events.clear()
        self._last_result = ""
        for ev in events:
            if ev.kind == "checked" and not ev.valid and ev.hash == block_hash:
                failed = True
                self._last_result = ev.result
            elif ev.kind == "checked" and not ev.valid and ev.hash in self.index:
                # a mutated block says nothing about the block with that header
                if ev.result != "MUTATED":
                    self._mark(ev.hash, REJECTED)
        self._apply(events)
        if failed:
            return _reject_reason(list(_kernel_log)) or "rejected"
        return None

    def _apply(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == "connected":
                if ev.hash == self.tip_hash():
                    continue
                if self.index[ev.hash].prev != self.tip_hash():
                    self._sync_to_kernel()
                    return
                self._connect(ev.hash, self.raw_block(ev.hash))
            elif ev.kind == "disconnected":
                if ev.hash != self.tip_hash():
                    self._sync_to_kernel()
                    return
                self._disconnect(ev.hash)
        if self.kernel.tip()[1] != self.tip_hash():
            self._sync_to_kernel()
        self.store.set_meta("tip", self.tip_hash())

    def _sync_to_kernel(self) -> None:
        """Walk our state to the kernel's tip (fallback when events do not fit)."""
        log.warning("resyncing chain state to the kernel's tip")
        _, k_tip = self.kernel.tip()
        if k_tip not in self.index:
            self._store_block(self.kernel.read_block(k_tip), OK)
        target = self._path(C.REGTEST_GENESIS_HASH, k_tip)
        while not (self._descends(k_tip, self.tip_hash())):
            self._disconnect(self.tip_hash())
        for h in target[self.tip_height() :]:
            self._connect(h, self.raw_block(h))

    def _forget(self, block_hash: str) -> None:
        info = self.index.pop(block_hash)
        if info.prev is not None:
            self.children[info.prev].discard(block_hash)
        self._parsed.pop(block_hash, None)
        self.store.delete_block(block_hash)

    def _mark(self, block_hash: str, status: int) -> None:
        stack = [block_hash]
        while stack:
            h = stack.pop()
            info = self.index[h]
            if info.status != status and not (status == INVALIDATED and info.status == REJECTED):
                info.status = status
                self.store.set_status(h, status)
            stack.extend(self.children.get(h, ()))

    # ----------------------------------------------------- connect/disconnect
    def _connect(self, block_hash: str, raw: bytes) -> None:
        hit = self._parsed.get(block_hash)
        _header, ptxs = hit if hit is not None else C.parse_block_txs(raw)
        height = len(self.active)
        spent_all: list[list[Coin]] = []
        removed: list[Outpoint] = []
        added: list[tuple[str, int, int, bytes, int, int]] = []
        indexed: list[tuple[str, str]] = []
        for i, ptx in enumerate(ptxs):
            tx = ptx.tx
            txid = ptx.txid
            if i > 0:
                spent: list[Coin] = []
                for inp in tx.vin:
                    op = (inp.txid.hex(), inp.vout)
                    coin = self.utxos.pop(op)
                    spent.append(coin)
                    removed.append(op)
                spent_all.append(spent)
            for n, out in enumerate(tx.vout):
                spk = bytes(out.script_pubkey.data)
                if S.is_unspendable(spk):
                    continue
                self.utxos[(txid, n)] = Coin(out.value, spk, height, i == 0)
                added.append((txid, n, out.value, spk, height, int(i == 0)))
            indexed.append((txid, block_hash))
            self.txindex[txid] = block_hash
        # outputs created and spent in the same block never reach the table
        added_keys = {(a[0], a[1]) for a in added}
        self.store.del_utxos([op for op in removed if op not in added_keys])
        self.store.add_utxos([a for a in added if (a[0], a[1]) in self.utxos])
        self.store.index_txs(indexed)
        self.store.put_undo(block_hash, spent_all)
        self.active.append(block_hash)
        self.mempool.remove_for_block([(p.txid, p.tx) for p in ptxs[1:]])

    def _disconnect(self, block_hash: str) -> None:
        assert block_hash == self.tip_hash()
        _header, ptxs = self.parsed_block(block_hash)
        txs = [p.tx for p in ptxs]
        undo = self.store.get_undo(block_hash)
        if undo is None:
            raise RuntimeError(f"no undo data for {block_hash}")
        removed: list[Outpoint] = []
        restored: list[tuple[str, int, int, bytes, int, int]] = []
        for i in range(len(txs) - 1, -1, -1):
            tx = txs[i]
            txid = ptxs[i].txid
            for n in range(len(tx.vout)):
                if self.utxos.pop((txid, n), None) is not None:
                    removed.append((txid, n))
            self.txindex.pop(txid, None)
            if i > 0:
                for inp, coin in zip(tx.vin, undo[i - 1], strict=True):
                    op = (inp.txid.hex(), inp.vout)
                    self.utxos[op] = coin
                    restored.append(
                        (op[0], op[1], coin.value, coin.spk, coin.height, int(coin.coinbase))
                    )
        self.store.del_utxos(removed)
        self.store.add_utxos([r for r in restored if (r[0], r[1]) in self.utxos])
        self.store.unindex_txs([p.txid for p in ptxs])
        self.active.pop()
        # Core's DisconnectedBlockTransactions: earlier blocks' txs first
        self.disconnected_txs[0:0] = [p.raw for p in ptxs[1:]]

    def _after_chain_change(self) -> None:
        """Resurrect transactions of disconnected blocks, revalidate the mempool
        against the new tip (as Core's MaybeUpdateMempoolForReorg), commit."""
        if self.disconnected_txs:
            resurrect = self.disconnected_txs
            self.disconnected_txs = []
            old = self.mempool.clear()
            for raw in resurrect:
                with contextlib.suppress(Rejection):
                    self.mempool.accept(raw, bypass_fee=True)
            for e in old:
                with contextlib.suppress(Rejection):
                    self.mempool.accept(e.raw, bypass_fee=True)
        self.store.set_meta("tip", self.tip_hash())
        self.store.commit()

    # ------------------------------------------------------------------ mining
    def block_template_txs(self) -> tuple[list[Transaction], int]:
        """Mempool transactions in arrival order (parents first). With
        ``block_min_fee`` (-blockmintxfee) a transaction goes in only with its
        unmined ancestors as one package whose feerate reaches the minimum, so
        a low-fee parent stays out until a child pays for it (CPFP)."""
        txs: list[Transaction] = []
        fees = 0
        weight = 4000  # reserved for header and coinbase
        included: set[str] = set()
        ordered = self.mempool.ordered()
        progress = True
        while progress:
            progress = False
            for e in ordered:
                if e.txid in included:
                    continue
                if self.block_min_fee > 0:
                    ancestors = self.mempool.ancestors(e.txid) - included
                    package = [a for a in ordered if a.txid in ancestors] + [e]
                    fee = sum(p.fee for p in package)
                    vsize = sum(p.vsize for p in package)
                    if fee * 1000 < self.block_min_fee * vsize:
                        continue
                elif not e.parents <= included:
                    continue
                else:
                    package = [e]
                add = sum(p.weight for p in package)
                if weight + add > C.MAX_BLOCK_WEIGHT:
                    continue
                for p in package:
                    txs.append(p.tx)
                    fees += p.fee
                    weight += p.weight
                    included.add(p.txid)
                progress = True
            if self.block_min_fee == 0:
                break  # arrival order already puts parents first
        return txs, fees

    def next_block_time(self) -> int:
        """Strictly increasing block times (at least now). A long burst of
        mining runs ahead of the clock by a second per block, and the kernel
        refuses blocks more than 2 h ahead; once an hour ahead, fall back to
        Core's miner rule, max(MTP + 1, now), which gains a second every ~6
        blocks only (tens of thousands of blocks per burst)."""
        now = int(time.time())
        strict = max(now, self.tip_info().time + 1)
        if strict <= now + 3600:
            return strict
        return max(now, self.mtp_of(self.tip_hash()) + 1)

    def generate(
        self, n: int, payout_script: bytes, txs: list[Transaction] | None = None
    ) -> list[str]:
        out: list[str] = []
        with self.lock:
            for _ in range(n):
                if txs is None:
                    block_txs, fees = self.block_template_txs()
                else:
                    block_txs, fees = txs, self._fees_of(txs)
                block_time = self.next_block_time()
                while True:
                    raw = C.assemble_block(
                        prev_hash=bytes.fromhex(self.tip_hash())[::-1],
                        height=self.tip_height() + 1,
                        time=block_time,
                        payout_script=payout_script,
                        txs=block_txs,
                        fees=fees,
                    )
                    # after invalidateblock the same template would rebuild the
                    # very block just invalidated: move the time on instead
                    if C.Header.parse(raw[:80]).hash()[::-1].hex() not in self.index:
                        break
                    block_time += 1
                reason = self.submit_block(raw)
                if reason is not None:
                    if txs is None and block_txs:
                        # our own policy let in something consensus refuses: log it
                        # loudly and evict, so the next block can be mined
                        log.error(
                            "template block refused by the kernel (%s); evicting %d txs",
                            reason,
                            len(block_txs),
                        )
                        for t in block_txs:
                            self.mempool.remove_with_descendants(t.txid().hex())
                    raise RPCError(RPC_MISC_ERROR, f"ProcessNewBlock, block not accepted: {reason}")
                out.append(C.Header.parse(raw[:80]).hash()[::-1].hex())
        return out

    def _fees_of(self, txs: list[Transaction]) -> int:
        fees = 0
        created: dict[Outpoint, int] = {}
        for tx in txs:
            txid = tx.txid().hex()
            value_in = 0
            for inp in tx.vin:
                op = (inp.txid.hex(), inp.vout)
                coin = self.utxos.get(op)
                if coin is not None:
                    value_in += coin.value
                else:
                    value_in += created.get(op, 0)
            for n, o in enumerate(tx.vout):
                created[(txid, n)] = o.value
            fees += max(0, value_in - sum(o.value for o in tx.vout))
        return fees

    # ---------------------------------------------------- invalidate/reconsider
    def invalidate_block(self, block_hash: str) -> None:
        with self.lock:
            info = self.index[block_hash]
            if info.height == 0:
                raise RPCError(RPC_MISC_ERROR, "Can't invalidate genesis block")
            self._mark(block_hash, INVALIDATED)
            if self.in_active_chain(block_hash):
                self._regenerate(info.height - 1)
            self._after_chain_change()

    def reconsider_block(self, block_hash: str) -> None:
        with self.lock:
            info = self.index[block_hash]
            # Core's ResetBlockFailureFlags: the block, its descendants, its ancestors
            todo: list[str] = []
            stack = [block_hash]
            while stack:
                h = stack.pop()
                todo.append(h)
                stack.extend(self.children.get(h, ()))
            a: str | None = info.prev
            while a is not None:
                todo.append(a)
                a = self.index[a].prev
            for h in todo:
                if self.index[h].status == INVALIDATED:
                    self.index[h].status = OK
                    self.store.set_status(h, OK)
            for h in sorted(todo, key=lambda x: (self.index[x].height, self.index[x].seq)):
                b = self.index[h]
                if b.status == OK and not self.kernel.knows(h):
                    self._process(self.raw_block(h), h)
            self._after_chain_change()

    def _regenerate(self, keep_height: int) -> None:
        """A fresh kernel chainstate holding our active chain up to
        ``keep_height`` and every other still-valid stored block."""
        t0 = time.monotonic()
        old = self.kernel
        new_gen = self.generation + 1
        path = self._kernel_dir(new_gen)
        shutil.rmtree(path, ignore_errors=True)
        fresh = Kernel(path)
        fresh.recording = False
        for h in self.active[1 : keep_height + 1]:
            fresh.process(self.raw_block(h))
        fresh.events.clear()
        # our own state goes back to the same point
        while self.tip_height() > keep_height:
            self._disconnect(self.tip_hash())
        self.kernel = fresh
        self.generation = new_gen
        fresh.recording = True
        keep = set(self.active)
        others = sorted(
            (b for b in self.index.values() if b.hash not in keep and b.status == OK),
            key=lambda b: (b.height, b.seq),
        )
        for b in others:
            if self.block_status(b.hash) == OK:
                self._process(self.raw_block(b.hash), b.hash)
        if fresh.tip()[1] != self.tip_hash():
            self._sync_to_kernel()
        self.store.set_meta("kernel_generation", str(new_gen))
        self.store.set_meta("tip", self.tip_hash())
        self.store.commit()
        old.close()
        del old
        shutil.rmtree(self._kernel_dir(new_gen - 1), ignore_errors=True)
        log.info(
            "kernel chainstate regenerated to height %d in %.3fs (generation %d)",
            keep_height,
            time.monotonic() - t0,
            new_gen,
        )

    # --------------------------------------------------------- chain tips
    def chain_tips(self) -> list[dict[str, object]]:
        tips = [h for h in self.index if not self.children.get(h)]
        if self.tip_hash() not in tips:
            tips.append(self.tip_hash())
        out: list[dict[str, object]] = []
        for h in tips:
            info = self.index[h]
            if self.in_active_chain(h):
                status, branch = "active", 0
            else:
                fork = h
                branch = 0
                while not self.in_active_chain(fork):
                    fork = self.index[fork].prev  # type: ignore[assignment]
                    branch += 1
                st = self.block_status(h)
                status = "invalid" if st != OK else "valid-fork"
            out.append({"height": info.height, "hash": h, "branchlen": branch, "status": status})
        out.sort(key=lambda t: (-int(t["height"]), str(t["hash"])))  # type: ignore[call-overload]
        return out

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock:
            yield


def _compact(n: int) -> bytes:
    from embit import compact

    return bytes(compact.to_bytes(n))


def _reject_reason(lines: list[str]) -> str | None:
    """The kernel logs why it refused a block; take Core's reject reason."""
    for line in lines:
        for marker in ("Block validation error: ", "AcceptBlock FAILED (", "ConnectBlock "):
            idx = line.find(marker)
            if idx < 0:
                continue
            rest = line[idx + len(marker) :]
            if marker == "ConnectBlock ":
                parts = rest.split(" failed, ", 1)
                if len(parts) != 2:
                    continue
                rest = parts[1]
            reason = rest.split(",")[0].split(")")[0].strip()
            if reason:
                return reason
        if "ProcessNewBlock: " in line and "FAILED" in line:
            inner = line.split("(", 1)[-1]
            return inner.split(",")[0].split(")")[0].strip()
    return None
