"""bitcoind's JSON shapes for transactions, blocks and headers
(``TxToUniv``, ``blockToJSON``, ``blockheaderToJSON``).

Amounts are BTC JSON numbers with exactly 8 decimals, as Core's
``ValueFromAmount``: they are emitted as raw JSON text (``orjson.Fragment``)."""

from __future__ import annotations

from typing import Any

import orjson
from embit.transaction import Transaction

from localchain.bitcoin import consensus as C
from localchain.bitcoin import scripts as S
from localchain.bitcoin.store import BlockInfo, Coin


def btc(sats: int) -> orjson.Fragment:
    sign = "-" if sats < 0 else ""
    sats = abs(sats)
    return orjson.Fragment(f"{sign}{sats // C.COIN}.{sats % C.COIN:08d}")


def tx_json(
    tx: Transaction,
    *,
    raw: bytes | None = None,
    ptx: C.ParsedTx | None = None,
    spent: list[Coin] | None = None,
    include_hex: bool = True,
) -> dict[str, Any]:
    ptx = ptx if ptx is not None else C.ParsedTx.of(tx, raw)
    raw = ptx.raw
    weight = ptx.weight
    out: dict[str, Any] = {
        "txid": ptx.txid,
        "hash": ptx.wtxid,
        "version": tx.version,
        "size": len(raw),
        "vsize": (weight + 3) // 4,
        "weight": weight,
        "locktime": tx.locktime,
    }
    vin: list[dict[str, Any]] = []
    is_coinbase = (
        len(tx.vin) == 1 and tx.vin[0].txid == b"\x00" * 32 and tx.vin[0].vout == 0xFFFFFFFF
    )
    for inp in tx.vin:
        item: dict[str, Any] = {}
        script_sig = bytes(inp.script_sig.data)
        if is_coinbase:
            item["coinbase"] = script_sig.hex()
        else:
            item["txid"] = inp.txid.hex()
            item["vout"] = inp.vout
            item["scriptSig"] = {
                "asm": S.script_asm(script_sig, sighash_decode=True),
                "hex": script_sig.hex(),
            }
        if inp.witness.items:
            item["txinwitness"] = [bytes(w).hex() for w in inp.witness.items]
        item["sequence"] = inp.sequence
        vin.append(item)
    out["vin"] = vin
    out["vout"] = [
        {
            "value": btc(o.value),
            "n": n,
            "scriptPubKey": S.script_pubkey_json(bytes(o.script_pubkey.data)),
        }
        for n, o in enumerate(tx.vout)
    ]
    if spent is not None and not is_coinbase:
        out["fee"] = btc(sum(c.value for c in spent) - sum(o.value for o in tx.vout))
    if include_hex:
        out["hex"] = raw.hex()
    return out


def header_json(
    info: BlockInfo, *, confirmations: int, mediantime: int, next_hash: str | None
) -> dict[str, Any]:
    target = C.bits_to_target(info.bits)
    out: dict[str, Any] = {
        "hash": info.hash,
        "confirmations": confirmations,
        "height": info.height,
        "version": info.version,
        "versionHex": f"{info.version & 0xFFFFFFFF:08x}",
        "merkleroot": info.merkle,
        "time": info.time,
        "mediantime": mediantime,
        "nonce": info.nonce,
        "bits": f"{info.bits:08x}",
        "target": f"{target:064x}",
        "difficulty": C.REGTEST_DIFFICULTY,
        "chainwork": f"{(info.height + 1) * C.BLOCK_WORK:064x}",
        "nTx": info.n_tx,
    }
    if info.prev is not None:
        out["previousblockhash"] = info.prev
    if next_hash is not None:
        out["nextblockhash"] = next_hash
    return out


def header_hex(raw_block: bytes) -> str:
    return raw_block[:80].hex()
