"""A mempool with Bitcoin Core's acceptance rules (v28/v29 defaults).

Every input script is verified by libbitcoinkernel with all consensus flags;
the policy around it (standardness, dust, fees, BIP68/BIP113 finality, full
RBF with BIP125 fee rules, ancestor limits) follows Core's
``MemPoolAccept`` and reports Core's reject reasons."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import pbk
from embit.transaction import Transaction
from pbk.script import PrecomputedTransactionData

from localchain.bitcoin import consensus as C
from localchain.bitcoin import kernelobj
from localchain.bitcoin import scripts as S
from localchain.bitcoin.store import Coin, Outpoint

MAX_MONEY = 21_000_000 * C.COIN
MAX_STANDARD_TX_WEIGHT = 400_000
MAX_STANDARD_SCRIPTSIG_SIZE = 1650
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_FINAL = 0xFFFFFFFF
SEQ_DISABLE_FLAG = 1 << 31
SEQ_TYPE_FLAG = 1 << 22
SEQ_MASK = 0x0000FFFF
SEQ_GRANULARITY = 9
MAX_REPLACEMENT_CANDIDATES = 100
ANCESTOR_LIMIT = 25
DESCENDANT_LIMIT = 25
MEMPOOL_HEIGHT = 0x7FFFFFFF


class ChainView(Protocol):
    def tip_height(self) -> int: ...
    def median_time_past(self, height: int) -> int: ...
    def utxo(self, outpoint: Outpoint) -> Coin | None: ...


@dataclass
class Rejection(Exception):  # noqa: N818 - Core's word
    reason: str
    debug: str = ""
    missing_inputs: bool = False
    decode_error: bool = False

    def __str__(self) -> str:
        return f"{self.reason}, {self.debug}" if self.debug else self.reason


@dataclass
class Entry:
    tx: Transaction
    raw: bytes
    txid: str
    wtxid: str
    fee: int
    vsize: int
    weight: int
    time: int
    height: int
    spent: list[Coin]
    parents: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)
    seq: int = 0


@dataclass
class Checked:
    """The outcome of checking a transaction for the mempool."""

    entry: Entry
    replaced: list[str]


def outpoints(tx: Transaction) -> list[Outpoint]:
    return [(inp.txid.hex(), inp.vout) for inp in tx.vin]


def decode_tx(raw: bytes) -> Transaction:
    """Core's deserializer (libbitcoinkernel) decides validity; embit gives
    the structure. Raise Rejection(decode_error=True) when it does not parse."""
    try:
        kernelobj.transaction(raw)
        tx = Transaction.parse(raw)
    except Exception as exc:
        raise Rejection("TX decode failed", decode_error=True) from exc
    if C.tx_bytes(tx) != raw:
        raise Rejection("TX decode failed", decode_error=True)
    return tx


def _explain_script_failure(spk: bytes, tx: Transaction, index: int) -> str:
    """libbitcoinkernel reports pass/fail only; name the likely ScriptError the
    way Core's message would (best effort)."""
    inp = tx.vin[index]
    items = list(inp.witness.items)
    kind = S.solve(spk)
    if kind in ("witness_v0_keyhash", "witness_v0_scripthash", "witness_v1_taproot"):
        if not items:
            return "Witness program was passed an empty witness"
        if kind == "witness_v0_keyhash":
            if len(items) != 2:
                return "Witness program hash mismatch"
            if hashlib.new("ripemd160", hashlib.sha256(items[1]).digest()).digest() != spk[2:]:
                return "Script failed an OP_EQUALVERIFY operation"
            if not items[0]:
                return "Script evaluated without error but finished with a false/empty top stack element"  # noqa: E501
            return "Signature must be zero for failed CHECK(MULTI)SIG operation"
        if kind == "witness_v0_scripthash":
            if hashlib.sha256(items[-1]).digest() != spk[2:]:
                return "Witness program hash mismatch"
            if any(len(i) > 8 for i in items[:-1]):
                return "Signature must be zero for failed CHECK(MULTI)SIG operation"
        if kind == "witness_v1_taproot" and len(items) == 1:
            return "Invalid Schnorr signature"
    if kind == "pubkeyhash":
        return "Signature must be zero for failed CHECK(MULTI)SIG operation"
    return "Script evaluated without error but finished with a false/empty top stack element"


class Mempool:
    def __init__(
        self, chain: ChainView, *, min_relay_fee: int = 1000, incremental_fee: int = 1000
    ) -> None:
        self.chain = chain
        self.min_relay_fee = min_relay_fee  # sat/kvB
        self.incremental_fee = incremental_fee  # sat/kvB
        self.entries: dict[str, Entry] = {}
        self.by_wtxid: dict[str, str] = {}
        self.spenders: dict[Outpoint, str] = {}
        self._seq = 0

    # queries ----------------------------------------------------------------
    def __contains__(self, txid: object) -> bool:
        return txid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def ordered(self) -> list[Entry]:
        """Entries in an order where parents come before children."""
        return sorted(self.entries.values(), key=lambda e: e.seq)

    def ancestors(self, txid: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.entries[txid].parents)
        while stack:
            t = stack.pop()
            if t in out:
                continue
            out.add(t)
            stack.extend(self.entries[t].parents)
        return out

    def descendants(self, txid: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.entries[txid].children)
        while stack:
            t = stack.pop()
            if t in out:
                continue
            out.add(t)
            stack.extend(self.entries[t].children)
        return out

    def output(self, outpoint: Outpoint) -> Coin | None:
        entry = self.entries.get(outpoint[0])
        if entry is None or outpoint[1] >= len(entry.tx.vout):
            return None
        out = entry.tx.vout[outpoint[1]]
        return Coin(out.value, bytes(out.script_pubkey.data), MEMPOOL_HEIGHT, False)

    # admission --------------------------------------------------------------
    def check(
        self,
        raw: bytes,
        *,
        max_fee_rate: int | None = None,
        bypass_fee: bool = False,
    ) -> Checked:
        """Everything ``accept`` checks, without changing the mempool."""
        tx = decode_tx(raw)
        txid = tx.txid().hex()
        wtxid = C.wtxid_raw(tx)[::-1].hex()
        self._check_transaction(tx)
        weight = C.tx_weight(tx)
        vsize = (weight + 3) // 4
        self._check_standard(tx, weight)
        tip = self.chain.tip_height()
        if not self._is_final(tx, tip + 1, self.chain.median_time_past(tip)):
            raise Rejection("non-final")
        if wtxid in self.by_wtxid:
            raise Rejection("txn-already-in-mempool")
        if txid in self.entries:
            raise Rejection("txn-same-nonwitness-data-in-mempool")

        conflicts: set[str] = set()
        for op in outpoints(tx):
            spender = self.spenders.get(op)
            if spender is not None:
                conflicts.add(spender)

        spent: list[Coin] = []
        parents: set[str] = set()
        for op in outpoints(tx):
            coin = self.output(op) if op[0] not in conflicts else None
            if coin is not None:
                parents.add(op[0])
            else:
                coin = self.chain.utxo(op)
            if coin is None:
                for n in range(len(tx.vout)):
                    if self.chain.utxo((txid, n)) is not None:
                        raise Rejection("txn-already-known")
                raise Rejection("bad-txns-inputs-missingorspent", missing_inputs=True)
            spent.append(coin)

        if not self._sequence_locks_ok(tx, spent, tip):
            raise Rejection("non-BIP68-final")

        value_in = 0
        for coin in spent:
            if coin.coinbase and tip + 1 - coin.height < C.COINBASE_MATURITY:
                raise Rejection(
                    "bad-txns-premature-spend-of-coinbase",
                    f"tried to spend coinbase at depth {tip + 1 - coin.height}",
                )
            value_in += coin.value
            if coin.value > MAX_MONEY or value_in > MAX_MONEY:
                raise Rejection("bad-txns-inputvalues-outofrange")
        value_out = sum(o.value for o in tx.vout)
        if value_in < value_out:
            raise Rejection(
                "bad-txns-in-belowout",
                f"value in ({_btc(value_in)}) < value out ({_btc(value_out)})",
            )
        fee = value_in - value_out

        if not bypass_fee:
            min_fee = self.min_relay_fee * vsize // 1000
            if fee < min_fee:
                raise Rejection("min relay fee not met", f"{fee} < {min_fee}")
        if max_fee_rate is not None and max_fee_rate > 0:
            if fee > max_fee_rate * vsize // 1000:
                raise Rejection(
                    "max-fee-exceeded", f"{_btc(fee)} > {_btc(max_fee_rate * vsize // 1000)}"
                )

        ancestors: set[str] = set()
        for p in parents:
            ancestors.add(p)
            ancestors |= self.ancestors(p)
        if len(ancestors) + 1 > ANCESTOR_LIMIT:
            raise Rejection(
                "too-long-mempool-chain",
                f"too many unconfirmed ancestors [limit: {ANCESTOR_LIMIT}]",
            )

        for a in ancestors:
            if len(self.descendants(a)) + 2 > DESCENDANT_LIMIT:
                raise Rejection(
                    "too-long-mempool-chain",
                    f"exceeds descendant size limit for tx {a} [limit: {DESCENDANT_LIMIT}]",
                )

        replaced: list[str] = []
        if conflicts:
            replaced = self._check_replacement(txid, fee, vsize, conflicts, ancestors, parents)

        self._verify_scripts(raw, tx, spent)
        entry = Entry(
            tx=tx,
            raw=raw,
            txid=txid,
            wtxid=wtxid,
            fee=fee,
            vsize=vsize,
            weight=weight,
            time=int(time.time()),
            height=tip,
            spent=spent,
            parents=parents,
        )
        return Checked(entry, replaced)

    def accept(
        self, raw: bytes, *, max_fee_rate: int | None = None, bypass_fee: bool = False
    ) -> Checked:
        checked = self.check(raw, max_fee_rate=max_fee_rate, bypass_fee=bypass_fee)
        for txid in checked.replaced:
            self._remove_one(txid)
        self.add(checked.entry)
        return checked

    def trial(
        self, raws: list[bytes], *, max_fee_rate: int | None = None
    ) -> list[Checked | Rejection]:
        """Check a package in order, each tx seeing the ones before it (as
        testmempoolaccept does), then leave the mempool exactly as it was."""
        added: list[str] = []
        removed: list[Entry] = []
        results: list[Checked | Rejection] = []
        try:
            for raw in raws:
                try:
                    checked = self.check(raw, max_fee_rate=max_fee_rate)
                except Rejection as rej:
                    results.append(rej)
                    continue
                for t in checked.replaced:
                    removed.append(self.entries[t])
                    self._remove_one(t)
                self.add(checked.entry)
                added.append(checked.entry.txid)
                results.append(checked)
        finally:
            for t in reversed(added):
                self._remove_one(t)
            for e in sorted(removed, key=lambda e: e.seq):
                e.children = set()
                self.add(e, seq=e.seq)
        return results

    def add(self, entry: Entry, *, seq: int | None = None) -> None:
        if seq is None:
            self._seq += 1
            seq = self._seq
        entry.seq = seq
        entry.parents = {p for p in entry.parents if p in self.entries}
        self.entries[entry.txid] = entry
        self.by_wtxid[entry.wtxid] = entry.txid
        for op in outpoints(entry.tx):
            self.spenders[op] = entry.txid
        for p in entry.parents:
            self.entries[p].children.add(entry.txid)

    def _remove_one(self, txid: str) -> None:
        entry = self.entries.pop(txid, None)
        if entry is None:
            return
        self.by_wtxid.pop(entry.wtxid, None)
        for op in outpoints(entry.tx):
            if self.spenders.get(op) == txid:
                del self.spenders[op]
        for p in entry.parents:
            if p in self.entries:
                self.entries[p].children.discard(txid)
        for c in entry.children:
            if c in self.entries:
                self.entries[c].parents.discard(txid)

    def remove_with_descendants(self, txid: str) -> list[str]:
        if txid not in self.entries:
            return []
        gone = [txid, *self.descendants(txid)]
        for t in gone:
            self._remove_one(t)
        return gone

    def remove_for_block(self, txs: Iterable[tuple[str, Transaction]]) -> None:
        """A block confirmed these (txid, tx): drop them, and anything conflicting."""
        for txid, tx in txs:
            if txid in self.entries:
                # its children stay: their parent is now confirmed
                self._remove_one(txid)
            for op in outpoints(tx):
                spender = self.spenders.get(op)
                if spender is not None and spender != txid:
                    self.remove_with_descendants(spender)

    def clear(self) -> list[Entry]:
        old = self.ordered()
        self.entries.clear()
        self.by_wtxid.clear()
        self.spenders.clear()
        return old

    # rules --------------------------------------------------------------------
    def _check_transaction(self, tx: Transaction) -> None:
        if not tx.vin:
            raise Rejection("bad-txns-vin-empty")
        if not tx.vout:
            raise Rejection("bad-txns-vout-empty")
        if len(C.tx_stripped_bytes(tx)) * C.WITNESS_SCALE_FACTOR > C.MAX_BLOCK_WEIGHT:
            raise Rejection("bad-txns-oversize")
        total = 0
        for out in tx.vout:
            if out.value > MAX_MONEY:
                raise Rejection("bad-txns-vout-toolarge")
            total += out.value
            if total > MAX_MONEY:
                raise Rejection("bad-txns-txouttotal-toolarge")
        ops = outpoints(tx)
        if len(set(ops)) != len(ops):
            raise Rejection("bad-txns-inputs-duplicate")
        null = ("00" * 32, 0xFFFFFFFF)
        if len(tx.vin) == 1 and ops[0] == null:
            raise Rejection("coinbase")
        if null in ops:
            raise Rejection("bad-txns-prevout-null")

    def _check_standard(self, tx: Transaction, weight: int) -> None:
        if tx.version < 1 or tx.version > 3:
            raise Rejection("version")
        if weight > MAX_STANDARD_TX_WEIGHT:
            raise Rejection("tx-size")
        for inp in tx.vin:
            sig = bytes(inp.script_sig.data)
            if len(sig) > MAX_STANDARD_SCRIPTSIG_SIZE:
                raise Rejection("scriptsig-size")
            if not S.is_push_only(sig):
                raise Rejection("scriptsig-not-pushonly")
        n_data = 0
        for out in tx.vout:
            spk = bytes(out.script_pubkey.data)
            if not S.is_standard_output(spk):
                raise Rejection("scriptpubkey")
            kind = S.solve(spk)
            if kind == "nulldata":
                n_data += 1
            elif out.value < S.dust_threshold(spk):
                raise Rejection("dust")
        if n_data > 1:
            raise Rejection("multi-op-return")
        if len(C.tx_stripped_bytes(tx)) < MIN_STANDARD_TX_NONWITNESS_SIZE:
            raise Rejection("tx-size-small")

    @staticmethod
    def _is_final(tx: Transaction, height: int, block_time: int) -> bool:
        if tx.locktime == 0:
            return True
        limit = height if tx.locktime < LOCKTIME_THRESHOLD else block_time
        if tx.locktime < limit:
            return True
        return all(inp.sequence == SEQUENCE_FINAL for inp in tx.vin)

    def _sequence_locks_ok(self, tx: Transaction, spent: list[Coin], tip: int) -> bool:
        """BIP68 as Core's CheckSequenceLocksAtTip, for a block at tip+1."""
        if tx.version < 2:
            return True
        min_height = -1
        min_time = -1
        for inp, coin in zip(tx.vin, spent, strict=True):
            seq = inp.sequence
            if seq & SEQ_DISABLE_FLAG:
                continue
            coin_height = tip + 1 if coin.height == MEMPOOL_HEIGHT else coin.height
            if seq & SEQ_TYPE_FLAG:
                coin_time = self.chain.median_time_past(max(coin_height - 1, 0))
                min_time = max(min_time, coin_time + ((seq & SEQ_MASK) << SEQ_GRANULARITY) - 1)
            else:
                min_height = max(min_height, coin_height + (seq & SEQ_MASK) - 1)
        if min_height >= tip + 1:
            return False
        return not min_time >= self.chain.median_time_past(tip)

    def _check_replacement(
        self,
        txid: str,
        fee: int,
        vsize: int,
        conflicts: set[str],
        ancestors: set[str],
        parents: set[str],
    ) -> list[str]:
        """Full RBF (Core's default since v28) with BIP125's fee rules."""
        if ancestors & conflicts:
            raise Rejection(
                "bad-txns-spends-conflicting-tx",
                f"{txid} spends conflicting transaction {sorted(ancestors & conflicts)[0]}",
            )
        evict: set[str] = set()
        for c in conflicts:
            evict.add(c)
            evict |= self.descendants(c)
        if len(evict) > MAX_REPLACEMENT_CANDIDATES:
            raise Rejection(
                "too many potential replacements",
                f"rejecting replacement {txid}; too many potential replacements "
                f"({len(evict)} > {MAX_REPLACEMENT_CANDIDATES})",
            )
        if ancestors & evict:
            raise Rejection("bad-txns-spends-conflicting-tx")
        conflict_parents = {op[0] for c in conflicts for op in outpoints(self.entries[c].tx)}
        for p in parents:
            if p not in conflict_parents:
                raise Rejection(
                    "replacement-adds-unconfirmed",
                    f"replacement {txid} adds unconfirmed input, idx {0}",
                )
        new_rate = fee * 1000 // vsize
        for c in conflicts:
            e = self.entries[c]
            old_rate = e.fee * 1000 // e.vsize
            if new_rate <= old_rate:
                raise Rejection(
                    "insufficient fee",
                    f"rejecting replacement {txid}; new feerate {_rate(new_rate)} <= "
                    f"old feerate {_rate(old_rate)}",
                )
        evicted_fees = sum(self.entries[t].fee for t in evict)
        if fee < evicted_fees:
            raise Rejection(
                "insufficient fee",
                f"rejecting replacement {txid}, less fees than conflicting txs; "
                f"{_btc(fee)} < {_btc(evicted_fees)}",
            )
        additional = fee - evicted_fees
        needed = self.incremental_fee * vsize // 1000
        if additional < needed:
            raise Rejection(
                "insufficient fee",
                f"rejecting replacement {txid}, not enough additional fees to relay; "
                f"{_btc(additional)} < {_btc(needed)}",
            )
        return sorted(evict, key=lambda t: -self.entries[t].seq)

    def _verify_scripts(self, raw: bytes, tx: Transaction, spent: list[Coin]) -> None:
        ktx = kernelobj.transaction(raw)
        outs = [pbk.TransactionOutput(kernelobj.script_pubkey(c.spk), c.value) for c in spent]
        pre = PrecomputedTransactionData(ktx, outs)
        for i, coin in enumerate(spent):
            ok = False
            try:
                ok = kernelobj.script_pubkey(coin.spk).verify(
                    coin.value, ktx, pre, i, pbk.ScriptVerificationFlags.ALL
                )
            except pbk.ScriptVerifyException:
                ok = False
            if not ok:
                raise Rejection(
                    "mandatory-script-verify-flag-failed "
                    f"({_explain_script_failure(coin.spk, tx, i)})"
                )


def _btc(sats: int) -> str:
    sign = "-" if sats < 0 else ""
    sats = abs(sats)
    return f"{sign}{sats // C.COIN}.{sats % C.COIN:08d}"


def _rate(sat_per_kvb: int) -> str:
    return f"{_btc(sat_per_kvb)} BTC/kvB"
