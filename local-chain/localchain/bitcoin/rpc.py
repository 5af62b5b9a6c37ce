"""bitcoind's RPC methods over the local node: names, parameters (positional
or named), result shapes and error codes/messages as Bitcoin Core v29."""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from embit.descriptor import Descriptor
from embit.descriptor.checksum import checksum as desc_checksum
from embit.transaction import Transaction

from localchain.bitcoin import consensus as C
from localchain.bitcoin import scripts as S
from localchain.bitcoin.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_METHOD_NOT_FOUND,
    RPC_MISC_ERROR,
    RPC_TRANSACTION_ERROR,
    RPC_TRANSACTION_REJECTED,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ALREADY_IN_UTXO_SET,
    RPCError,
)
from localchain.bitcoin.mempool import MEMPOOL_HEIGHT, Rejection, decode_tx
from localchain.bitcoin.node import Node
from localchain.bitcoin.render import btc, header_json, tx_json
from localchain.bitcoin.store import Coin

VERSION = 290000
SUBVERSION = "/localchain-regtest:0.1.0/"
DEFAULT_MAX_FEE_RATE = Decimal("0.10")  # BTC/kvB, sendrawtransaction's default
FEE_ESTIMATE_WINDOW = 1008


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float | Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _want(v: Any, kind: str) -> None:
    if _type_name(v) != kind:
        raise RPCError(
            RPC_TYPE_ERROR, f"JSON value of type {_type_name(v)} is not of expected type {kind}"
        )


def _int(v: Any) -> int:
    _want(v, "number")
    if isinstance(v, float | Decimal) and v != int(v):
        raise RPCError(RPC_TYPE_ERROR, "JSON integer out of range")
    return int(v)


def _hash(v: Any, name: str) -> str:
    _want(v, "string")
    if len(v) != 64:
        raise RPCError(
            RPC_INVALID_PARAMETER, f"{name} must be of length 64 (not {len(v)}, for '{v}')"
        )
    try:
        bytes.fromhex(v)
    except ValueError:
        raise RPCError(
            RPC_INVALID_PARAMETER, f"{name} must be hexadecimal string (not '{v}')"
        ) from None
    return str(v).lower()


def _amount(v: Any) -> int:
    """BTC (number or string) to satoshis, as Core's AmountFromValue."""
    if _type_name(v) not in ("number", "string"):
        raise RPCError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise RPCError(RPC_TYPE_ERROR, "Invalid amount") from None
    if d < 0:
        raise RPCError(RPC_TYPE_ERROR, "Amount out of range")
    sats = d * C.COIN
    if sats != sats.to_integral_value():
        raise RPCError(RPC_TYPE_ERROR, "Invalid amount")
    return int(sats)


def _verbosity(v: Any, default: int) -> int:
    if v is None:
        return default
    if isinstance(v, bool):
        return 1 if v else 0
    return _int(v)


def _bool(v: Any, default: bool) -> bool:
    if v is None:
        return default
    _want(v, "bool")
    return bool(v)


class RPC:
    def __init__(self, node: Node, on_stop: Callable[[], None] | None = None) -> None:
        self.node = node
        self.on_stop = on_stop
        self._tx_json_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.methods: dict[str, Callable[..., Any]] = {
            name[4:]: fn
            for name, fn in inspect.getmembers(self, inspect.ismethod)
            if name.startswith("rpc_")
        }

    def call(self, method: str, params: Any) -> Any:
        fn = self.methods.get(method)
        if fn is None:
            raise RPCError(RPC_METHOD_NOT_FOUND, "Method not found")
        names = list(inspect.signature(fn).parameters)
        if isinstance(params, dict):
            args: list[Any] = []
            unknown = [k for k in params if k not in names]
            if unknown:
                raise RPCError(RPC_INVALID_PARAMETER, f"Unknown named parameter {unknown[0]}")
            for n in names:
                args.append(params.get(n))
            while args and args[-1] is None:
                args.pop()
        else:
            args = list(params or [])
        required = [
            n
            for n, p in inspect.signature(fn).parameters.items()
            if p.default is inspect.Parameter.empty
        ]
        if (
            len(args) > len(names)
            or len(args) < len(required)
            or any(args[i] is None for i in range(len(required)) if i < len(args))
        ):
            raise RPCError(
                RPC_MISC_ERROR, f"{method} {' '.join(names)}\n\nwrong number of parameters"
            )
        with self.node.lock:
            return fn(*args)

    # ------------------------------------------------------------ helpers
    def _info(self, block_hash: str) -> Any:
        info = self.node.index.get(block_hash)
        if info is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        return info

    def _header(self, block_hash: str) -> dict[str, Any]:
        node = self.node
        info = self._info(block_hash)
        active = node.in_active_chain(block_hash)
        confirmations = node.tip_height() - info.height + 1 if active else -1
        nxt = node.active[info.height + 1] if active and info.height < node.tip_height() else None
        return header_json(
            info, confirmations=confirmations, mediantime=node.mtp_of(block_hash), next_hash=nxt
        )

    def _spk_of_address(self, address: Any) -> bytes:
        _want(address, "string")
        try:
            return S.address_to_spk(address)
        except S.InvalidAddress:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address") from None

    # ------------------------------------------------------------ blockchain
    def rpc_getblockchaininfo(self) -> dict[str, Any]:
        node = self.node
        tip = node.tip_info()
        size = sum(p.stat().st_size for p in node.datadir.rglob("*") if p.is_file())
        return {
            "chain": "regtest",
            "blocks": tip.height,
            "headers": tip.height,
            "bestblockhash": tip.hash,
            "bits": f"{tip.bits:08x}",
            "target": f"{C.bits_to_target(tip.bits):064x}",
            "difficulty": C.REGTEST_DIFFICULTY,
            "time": tip.time,
            "mediantime": node.mtp_of(tip.hash),
            "verificationprogress": 1,
            "initialblockdownload": tip.height == 0,
            "chainwork": f"{(tip.height + 1) * C.BLOCK_WORK:064x}",
            "size_on_disk": size,
            "pruned": False,
            "warnings": [],
        }

    def rpc_getblockcount(self) -> int:
        return self.node.tip_height()

    def rpc_getbestblockhash(self) -> str:
        return self.node.tip_hash()

    def rpc_getdifficulty(self) -> float:
        return C.REGTEST_DIFFICULTY

    def rpc_getblockhash(self, height: Any) -> str:
        h = _int(height)
        if h < 0 or h > self.node.tip_height():
            raise RPCError(RPC_INVALID_PARAMETER, "Block height out of range")
        return self.node.active[h]

    def rpc_getblockheader(self, blockhash: Any, verbose: Any = None) -> Any:
        block_hash = _hash(blockhash, "hash")
        self._info(block_hash)
        if not _bool(verbose, True):
            return self.node.raw_block(block_hash)[:80].hex()
        return self._header(block_hash)

    def rpc_getblock(self, blockhash: Any, verbosity: Any = None) -> Any:
        block_hash = _hash(blockhash, "blockhash")
        info = self._info(block_hash)
        level = _verbosity(verbosity, 1)
        raw = self.node.raw_block(block_hash)
        if level <= 0:
            return raw.hex()
        out = self._header(block_hash)
        out["strippedsize"] = info.stripped_size
        out["size"] = info.size
        out["weight"] = info.weight
        _header, ptxs = self.node.parsed_block(block_hash)
        if level == 1:
            out["tx"] = [p.txid for p in ptxs]
            return out
        if level == 2:
            out["tx"] = self._block_txs_json(block_hash)
            return out
        undo = self.node.store.get_undo(block_hash)
        items = []
        for i, p in enumerate(ptxs):
            spent = undo[i - 1] if undo is not None and i > 0 else None
            item = tx_json(p.tx, ptx=p, spent=spent)
            if spent is not None:
                for vin, coin in zip(item["vin"], spent, strict=True):
                    vin["prevout"] = self._prevout(coin)
            items.append(item)
        out["tx"] = items
        return out

    def _block_txs_json(self, block_hash: str) -> list[dict[str, Any]]:
        """getblock verbosity 2's tx list; a block's is immutable: LRU-cached."""
        hit = self._tx_json_cache.get(block_hash)
        if hit is not None:
            self._tx_json_cache.move_to_end(block_hash)
            return hit
        _header, ptxs = self.node.parsed_block(block_hash)
        undo = self.node.store.get_undo(block_hash)
        items = [
            tx_json(p.tx, ptx=p, spent=undo[i - 1] if undo is not None and i > 0 else None)
            for i, p in enumerate(ptxs)
        ]
        self._tx_json_cache[block_hash] = items
        while len(self._tx_json_cache) > 64:
            self._tx_json_cache.popitem(last=False)
        return items

    def _prevout(self, coin: Coin) -> dict[str, Any]:
        return {
            "generated": coin.coinbase,
            "height": coin.height,
            "value": btc(coin.value),
            "scriptPubKey": S.script_pubkey_json(coin.spk),
        }

    def rpc_getchaintips(self) -> list[dict[str, object]]:
        return self.node.chain_tips()

    def rpc_invalidateblock(self, blockhash: Any) -> None:
        block_hash = _hash(blockhash, "blockhash")
        self._info(block_hash)
        self.node.invalidate_block(block_hash)

    def rpc_reconsiderblock(self, blockhash: Any) -> None:
        block_hash = _hash(blockhash, "blockhash")
        self._info(block_hash)
        self.node.reconsider_block(block_hash)

    def rpc_submitblock(self, hexdata: Any, dummy: Any = None) -> str | None:  # noqa: ARG002 - bitcoind's parameter, unused here
        _want(hexdata, "string")
        try:
            raw = bytes.fromhex(hexdata)
            C.parse_block(raw)
        except Exception:
            raise RPCError(RPC_DESERIALIZATION_ERROR, "Block decode failed") from None
        return self.node.submit_block(raw)

    def rpc_gettxout(self, txid: Any, n: Any, include_mempool: Any = None) -> Any:
        t = _hash(txid, "txid")
        vout = _int(n)
        node = self.node
        op = (t, vout)
        coin: Coin | None
        if _bool(include_mempool, True):
            if op in node.mempool.spenders:
                return None
            coin = node.mempool.output(op) or node.utxo(op)
        else:
            coin = node.utxo(op)
        if coin is None:
            return None
        confirmations = 0 if coin.height == MEMPOOL_HEIGHT else node.tip_height() - coin.height + 1
        return {
            "bestblock": node.tip_hash(),
            "confirmations": confirmations,
            "value": btc(coin.value),
            "scriptPubKey": S.script_pubkey_json(coin.spk),
            "coinbase": coin.coinbase,
        }

    def rpc_scantxoutset(self, action: Any, scanobjects: Any = None) -> Any:
        _want(action, "string")
        if action == "status":
            return None
        if action == "abort":
            return False
        if action != "start":
            raise RPCError(RPC_INVALID_PARAMETER, f"Invalid action '{action}'")
        if scanobjects is None:
            raise RPCError(RPC_MISC_ERROR, "scanobjects argument is required for the start action")
        _want(scanobjects, "array")
        wanted: set[bytes] = set()
        for obj in scanobjects:
            wanted |= self._scan_scripts(obj)
        node = self.node
        unspents = []
        total = 0
        found = [(op, coin) for op, coin in node.utxos.items() if coin.spk in wanted]
        for (txid, n), coin in sorted(found, key=lambda kv: (kv[1].height, kv[0])):
            total += coin.value
            unspents.append(
                {
                    "txid": txid,
                    "vout": n,
                    "scriptPubKey": coin.spk.hex(),
                    "desc": S.descriptor_of(coin.spk),
                    "amount": btc(coin.value),
                    "coinbase": coin.coinbase,
                    "height": coin.height,
                    "blockhash": node.active[coin.height],
                    "confirmations": node.tip_height() - coin.height + 1,
                }
            )
        return {
            "success": True,
            "txouts": len(node.utxos),
            "height": node.tip_height(),
            "bestblock": node.tip_hash(),
            "unspents": unspents,
            "total_amount": btc(total),
        }

    def _scan_scripts(self, obj: Any) -> set[bytes]:
        rng = (0, 1000)
        if isinstance(obj, dict):
            desc = obj.get("desc")
            r = obj.get("range")
            if isinstance(r, int):
                rng = (0, r)
            elif isinstance(r, list) and len(r) == 2:
                rng = (int(r[0]), int(r[1]))
        else:
            desc = obj
        if not isinstance(desc, str):
            raise RPCError(
                RPC_INVALID_PARAMETER, "Scan object needs to be either a string or an object"
            )
        body, _, check = desc.partition("#")
        if check and desc_checksum(body) != check:
            raise RPCError(
                RPC_INVALID_ADDRESS_OR_KEY,
                f"Provided checksum '{check}' does not match computed checksum '{desc_checksum(body)}'",  # noqa: E501 - Core's exact message
            )
        if body.startswith("addr(") and body.endswith(")"):
            try:
                return {S.address_to_spk(body[5:-1])}
            except S.InvalidAddress:
                raise RPCError(
                    RPC_INVALID_ADDRESS_OR_KEY, f"Address {body[5:-1]!r} is not valid"
                ) from None
        if body.startswith("raw(") and body.endswith(")"):
            try:
                return {bytes.fromhex(body[4:-1])}
            except ValueError:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Raw script is not hex") from None
        try:
            d = Descriptor.from_string(body)
            if d.is_wildcard:
                return {bytes(d.derive(i).script_pubkey().data) for i in range(rng[0], rng[1] + 1)}
            return {bytes(d.script_pubkey().data)}
        except Exception as exc:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, f"Invalid descriptor: {exc}") from None

    # ------------------------------------------------------------ transactions
    def _tx_location(self, txid: str) -> tuple[Transaction, bytes, str | None, list[Coin] | None]:
        node = self.node
        entry = node.mempool.entries.get(txid)
        if entry is not None:
            return entry.tx, entry.raw, None, entry.spent
        block_hash = node.txindex.get(txid)
        if block_hash is None:
            raise RPCError(
                RPC_INVALID_ADDRESS_OR_KEY,
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",  # noqa: E501 - Core's exact message
            )
        return self._tx_in_block(txid, block_hash)

    def _tx_in_block(
        self, txid: str, block_hash: str
    ) -> tuple[Transaction, bytes, str | None, list[Coin] | None]:
        _h, ptxs = self.node.parsed_block(block_hash)
        for i, p in enumerate(ptxs):
            if p.txid == txid:
                undo = self.node.store.get_undo(block_hash) if i > 0 else None
                spent = undo[i - 1] if undo is not None else None
                return p.tx, p.raw, block_hash, spent
        raise RPCError(
            RPC_INVALID_ADDRESS_OR_KEY,
            "No such transaction found in the provided block. Use gettransaction for wallet transactions.",  # noqa: E501 - Core's exact message
        )

    def rpc_getrawtransaction(self, txid: Any, verbosity: Any = None, blockhash: Any = None) -> Any:
        t = _hash(txid, "parameter 1")
        level = _verbosity(verbosity, 0)
        node = self.node
        if t == self._genesis_coinbase_txid():
            raise RPCError(
                RPC_INVALID_ADDRESS_OR_KEY,
                "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",  # noqa: E501 - Core's exact message
            )
        if blockhash is not None:
            bh = _hash(blockhash, "parameter 3")
            if bh not in node.index:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found")
            tx, raw, block_hash, spent = self._tx_in_block(t, bh)
        else:
            tx, raw, block_hash, spent = self._tx_location(t)
        if level == 0:
            return raw.hex()
        out: dict[str, Any] = {}
        if blockhash is not None:
            out["in_active_chain"] = node.in_active_chain(str(block_hash))
        item = tx_json(tx, raw=raw, spent=spent if level >= 2 else None)
        if level >= 2 and spent is not None:
            for vin, coin in zip(item["vin"], spent, strict=True):
                vin["prevout"] = self._prevout(coin)
        out.update(item)
        if block_hash is not None:
            out["blockhash"] = block_hash
            info = node.index[block_hash]
            if node.in_active_chain(block_hash):
                out["confirmations"] = node.tip_height() - info.height + 1
                out["time"] = info.time
                out["blocktime"] = info.time
            else:
                out["confirmations"] = 0
        return out

    def _genesis_coinbase_txid(self) -> str:
        return "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"

    def rpc_decoderawtransaction(self, hexstring: Any, iswitness: Any = None) -> dict[str, Any]:  # noqa: ARG002 - bitcoind's parameter, unused here
        _want(hexstring, "string")
        try:
            tx = decode_tx(bytes.fromhex(hexstring))
        except (Rejection, ValueError):
            raise RPCError(RPC_DESERIALIZATION_ERROR, "TX decode failed") from None
        return tx_json(tx, include_hex=False)

    def _max_fee_rate(self, maxfeerate: Any) -> int:
        rate = DEFAULT_MAX_FEE_RATE if maxfeerate is None else maxfeerate
        sats = _amount(rate)
        if sats > C.COIN:
            raise RPCError(
                RPC_TYPE_ERROR, "Fee rates larger than or equal to 1BTC/kvB are not accepted"
            )
        return sats

    def rpc_sendrawtransaction(
        self, hexstring: Any, maxfeerate: Any = None, maxburnamount: Any = None
    ) -> str:
        _want(hexstring, "string")
        max_rate = self._max_fee_rate(maxfeerate)
        max_burn = _amount(maxburnamount) if maxburnamount is not None else 0
        try:
            raw = bytes.fromhex(hexstring)
            tx = decode_tx(raw)
        except (Rejection, ValueError):
            raise RPCError(
                RPC_DESERIALIZATION_ERROR,
                "TX decode failed. Make sure the tx has at least one input.",
            ) from None
        for out in tx.vout:
            spk = bytes(out.script_pubkey.data)
            if S.is_unspendable(spk) and out.value > max_burn:
                raise RPCError(
                    RPC_TRANSACTION_ERROR,
                    "Unspendable output exceeds maximum configured by user (maxburnamount)",
                )
        node = self.node
        txid: str = tx.txid().hex()
        if any(node.utxo((txid, n)) is not None for n in range(len(tx.vout))):
            raise RPCError(
                RPC_VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set"
            )
        if txid in node.mempool:
            return txid
        try:
            node.mempool.accept(raw, max_fee_rate=max_rate)
        except Rejection as rej:
            if rej.reason == "max-fee-exceeded":
                raise RPCError(
                    RPC_TRANSACTION_ERROR,
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                ) from None
            if rej.missing_inputs:
                raise RPCError(RPC_TRANSACTION_ERROR, str(rej)) from None
            raise RPCError(RPC_TRANSACTION_REJECTED, str(rej)) from None
        return txid

    def rpc_testmempoolaccept(self, rawtxs: Any, maxfeerate: Any = None) -> list[dict[str, Any]]:
        _want(rawtxs, "array")
        if not 1 <= len(rawtxs) <= 25:
            raise RPCError(
                RPC_INVALID_PARAMETER, "Array must contain between 1 and 25 transactions."
            )
        max_rate = self._max_fee_rate(maxfeerate)
        raws: list[bytes] = []
        ids: list[dict[str, Any]] = []
        for hexstring in rawtxs:
            _want(hexstring, "string")
            try:
                raw = bytes.fromhex(hexstring)
                ptx = C.ParsedTx.of(decode_tx(raw), raw)
            except (Rejection, ValueError):
                raise RPCError(
                    RPC_DESERIALIZATION_ERROR,
                    f"TX decode failed: {hexstring[:16]} Make sure the tx has at least one input.",
                ) from None
            raws.append(raw)
            ids.append({"txid": ptx.txid, "wtxid": ptx.wtxid})
        results = []
        for res, outcome in zip(
            ids, self.node.mempool.trial(raws, max_fee_rate=max_rate), strict=True
        ):
            if isinstance(outcome, Rejection):
                res["allowed"] = False
                res["reject-reason"] = (
                    "missing-inputs" if outcome.missing_inputs else outcome.reason
                )
                if outcome.debug:
                    res["reject-details"] = str(outcome)
            else:
                e = outcome.entry
                res["allowed"] = True
                res["vsize"] = e.vsize
                res["fees"] = {
                    "base": btc(e.fee),
                    "effective-feerate": btc(e.fee * 1000 // e.vsize),
                    "effective-includes": [e.wtxid],
                }
            results.append(res)
        return results

    # ------------------------------------------------------------ mempool
    def _entry_json(self, txid: str) -> dict[str, Any]:
        pool = self.node.mempool
        e = pool.entries[txid]
        anc = pool.ancestors(txid)
        desc = pool.descendants(txid)
        anc_fee = e.fee + sum(pool.entries[t].fee for t in anc)
        desc_fee = e.fee + sum(pool.entries[t].fee for t in desc)
        return {
            "vsize": e.vsize,
            "weight": e.weight,
            "time": e.time,
            "height": e.height,
            "descendantcount": len(desc) + 1,
            "descendantsize": e.vsize + sum(pool.entries[t].vsize for t in desc),
            "ancestorcount": len(anc) + 1,
            "ancestorsize": e.vsize + sum(pool.entries[t].vsize for t in anc),
            "wtxid": e.wtxid,
            "fees": {
                "base": btc(e.fee),
                "modified": btc(e.fee),
                "ancestor": btc(anc_fee),
                "descendant": btc(desc_fee),
            },
            "depends": sorted(e.parents),
            "spentby": sorted(e.children),
            "bip125-replaceable": self._signals_rbf(txid, anc),
            "unbroadcast": False,
        }

    def _signals_rbf(self, txid: str, ancestors: set[str]) -> bool:
        """BIP125 signalling (explicit or inherited), as Core still reports it;
        replacement itself is full-RBF regardless."""
        pool = self.node.mempool
        return any(
            inp.sequence < 0xFFFFFFFE for t in (txid, *ancestors) for inp in pool.entries[t].tx.vin
        )

    def rpc_getrawmempool(self, verbose: Any = None, mempool_sequence: Any = None) -> Any:  # noqa: ARG002 - bitcoind's parameter, unused here
        pool = self.node.mempool
        if _bool(verbose, False):
            return {e.txid: self._entry_json(e.txid) for e in pool.ordered()}
        return [e.txid for e in pool.ordered()]

    def rpc_getmempoolentry(self, txid: Any) -> dict[str, Any]:
        t = _hash(txid, "parameter 1")
        if t not in self.node.mempool:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        return self._entry_json(t)

    def rpc_getmempoolancestors(self, txid: Any, verbose: Any = None) -> Any:
        t = _hash(txid, "parameter 1")
        if t not in self.node.mempool:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        found = sorted(self.node.mempool.ancestors(t))
        if _bool(verbose, False):
            return {a: self._entry_json(a) for a in found}
        return found

    def rpc_getmempooldescendants(self, txid: Any, verbose: Any = None) -> Any:
        t = _hash(txid, "parameter 1")
        if t not in self.node.mempool:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")
        found = sorted(self.node.mempool.descendants(t))
        if _bool(verbose, False):
            return {d: self._entry_json(d) for d in found}
        return found

    def rpc_getmempoolinfo(self) -> dict[str, Any]:
        pool = self.node.mempool
        return {
            "loaded": True,
            "size": len(pool),
            "bytes": sum(e.vsize for e in pool.entries.values()),
            "usage": sum(len(e.raw) * 4 for e in pool.entries.values()),
            "total_fee": btc(sum(e.fee for e in pool.entries.values())),
            "maxmempool": 300_000_000,
            "mempoolminfee": btc(pool.min_relay_fee),
            "minrelaytxfee": btc(pool.min_relay_fee),
            "incrementalrelayfee": btc(pool.incremental_fee),
            "unbroadcastcount": 0,
            "fullrbf": True,
        }

    def rpc_estimatesmartfee(self, conf_target: Any, estimate_mode: Any = None) -> dict[str, Any]:
        target = _int(conf_target)
        if not 1 <= target <= FEE_ESTIMATE_WINDOW:
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid conf_target, must be between 1 and 1008")
        mode = "economical" if estimate_mode is None else str(estimate_mode).lower()
        if mode not in ("unset", "economical", "conservative"):
            raise RPCError(
                RPC_INVALID_PARAMETER,
                'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"',  # noqa: E501 - Core's exact message
            )
        target = max(target, 2)
        rates = self._recent_feerates(blocks=max(2 * target, 6))
        if not rates:
            return {"errors": ["Insufficient data or no feerate found"], "blocks": 0}
        rates.sort()
        # a lower target asks for more certainty: take a higher percentile
        pct = 0.95 if mode == "conservative" else max(0.5, 0.9 - 0.05 * (target - 2))
        rate = rates[min(len(rates) - 1, int(pct * len(rates)))]
        rate = max(rate, self.node.mempool.min_relay_fee)
        return {"feerate": btc(rate), "blocks": target}

    def _recent_feerates(self, blocks: int) -> list[int]:
        """sat/kvB of the non-coinbase transactions in the last ``blocks`` blocks."""
        node = self.node
        rates: list[int] = []
        for h in node.active[max(1, node.tip_height() - blocks + 1) :]:
            undo = node.store.get_undo(h)
            if not undo:
                continue
            _hd, ptxs = node.parsed_block(h)
            for p, spent in zip(ptxs[1:], undo, strict=True):
                fee = sum(c.value for c in spent) - sum(o.value for o in p.tx.vout)
                rates.append(fee * 1000 // p.vsize)
        return rates

    # ------------------------------------------------------------ mining
    def rpc_generatetoaddress(self, nblocks: Any, address: Any, maxtries: Any = None) -> list[str]:  # noqa: ARG002 - bitcoind's parameter, unused here
        n = _int(nblocks)
        spk = self._spk_of_address(address)
        return self.node.generate(n, spk)

    def rpc_generatetodescriptor(
        self,
        num_blocks: Any,
        descriptor: Any,
        maxtries: Any = None,  # noqa: ARG002 - bitcoind's parameter, unused here
    ) -> list[str]:
        n = _int(num_blocks)
        scripts = self._scan_scripts(descriptor)
        if len(scripts) != 1:
            raise RPCError(
                RPC_INVALID_ADDRESS_OR_KEY,
                "Ranged descriptor not accepted. Maybe pass through deriveaddresses first?",
            )
        return self.node.generate(n, next(iter(scripts)))

    def rpc_generateblock(
        self, output: Any, transactions: Any, submit: Any = None
    ) -> dict[str, Any]:
        _want(output, "string")
        try:
            spk = S.address_to_spk(output)
        except S.InvalidAddress:
            scripts = self._scan_scripts(output)
            if len(scripts) != 1:
                raise RPCError(
                    RPC_INVALID_ADDRESS_OR_KEY, "Error: Invalid address or descriptor"
                ) from None
            spk = next(iter(scripts))
        _want(transactions, "array")
        txs: list[Transaction] = []
        for item in transactions:
            _want(item, "string")
            if len(item) == 64 and item in self.node.mempool:
                txs.append(self.node.mempool.entries[item].tx)
                continue
            try:
                txs.append(decode_tx(bytes.fromhex(item)))
            except (Rejection, ValueError):
                raise RPCError(
                    RPC_DESERIALIZATION_ERROR,
                    f"Transaction decode failed for {item}. Make sure the tx has at least one input.",  # noqa: E501 - Core's exact message
                ) from None
        if not _bool(submit, True):
            raise RPCError(RPC_INVALID_PARAMETER, "submit=false is not supported by this node")
        hashes = self.node.generate(1, spk, txs)
        return {"hash": hashes[0]}

    # ------------------------------------------------------------ util / network
    def rpc_validateaddress(self, address: Any) -> dict[str, Any]:
        _want(address, "string")
        try:
            spk = S.address_to_spk(address)
        except S.InvalidAddress:
            return {
                "isvalid": False,
                "error_locations": [],
                "error": "Invalid or unsupported Segwit (Bech32) or Base58 encoding.",
            }
        out: dict[str, Any] = {
            "isvalid": True,
            "address": address,
            "scriptPubKey": spk.hex(),
            "isscript": S.solve(spk) in ("scripthash", "witness_v0_scripthash"),
            "iswitness": S.witness_program(spk) is not None,
        }
        wp = S.witness_program(spk)
        if wp is not None:
            out["witness_version"] = wp[0]
            out["witness_program"] = wp[1].hex()
        return out

    def rpc_getnetworkinfo(self) -> dict[str, Any]:
        pool = self.node.mempool
        return {
            "version": VERSION,
            "subversion": SUBVERSION,
            "protocolversion": 70016,
            "localservices": "0000000000000c08",
            "localservicesnames": ["WITNESS", "NETWORK_LIMITED", "P2P_V2"],
            "localrelay": True,
            "timeoffset": 0,
            "networkactive": False,
            "connections": 0,
            "connections_in": 0,
            "connections_out": 0,
            "networks": [],
            "relayfee": btc(pool.min_relay_fee),
            "incrementalfee": btc(pool.incremental_fee),
            "localaddresses": [],
            "warnings": [],
        }

    def rpc_getindexinfo(self, index_name: Any = None) -> dict[str, Any]:
        info = {"txindex": {"synced": True, "best_block_height": self.node.tip_height()}}
        if index_name is None:
            return info
        return {k: v for k, v in info.items() if k == index_name}

    def rpc_getzmqnotifications(self) -> list[Any]:
        return []

    def rpc_getmininginfo(self) -> dict[str, Any]:
        tip = self.node.tip_info()
        return {
            "blocks": tip.height,
            "bits": f"{tip.bits:08x}",
            "difficulty": C.REGTEST_DIFFICULTY,
            "target": f"{C.bits_to_target(tip.bits):064x}",
            "networkhashps": 0,
            "pooledtx": len(self.node.mempool),
            "chain": "regtest",
            "warnings": [],
        }

    def rpc_getconnectioncount(self) -> int:
        return 0

    def rpc_uptime(self) -> int:
        return int(time.time() - self.node.started)

    def rpc_ping(self) -> None:
        return None

    def rpc_help(self, command: Any = None) -> str:
        if command is not None:
            if command not in self.methods:
                return f"help: unknown command: {command}"
            names = list(inspect.signature(self.methods[command]).parameters)
            return f"{command} {' '.join(names)}"
        return "\n".join(sorted(self.methods))

    def rpc_stop(self) -> str:
        if self.on_stop is not None:
            self.on_stop()
        return "Bitcoin Core stopping"
