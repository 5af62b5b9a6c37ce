"""Measure the local regtest node: ``python -m localchain.bitcoin.bench``.

Mining rate (generatetoaddress, empty blocks and blocks with transactions),
RPC round trips (getblockcount), sendrawtransaction, and getblock verbosity
2 latency on a block with many transactions. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from localchain.bitcoin.devwallet import DevWallet
from localchain.bitcoin.harness import BitcoinRegtest


def _lat(fn: Callable[[], Any], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", type=int, default=1000)
    p.add_argument("--txs", type=int, default=200, help="transactions in the getblock block")
    args = p.parse_args()
    out: dict[str, Any] = {}
    with BitcoinRegtest() as node:
        wallet = DevWallet(node, "bench")
        # libbitcoinkernel runs Core's regtest consistency checks (CheckBlockIndex)
        # on every block: the rate falls as the chain grows, so report it per segment
        rates = {}
        done = 0
        while done < args.blocks:
            step = min(1000, args.blocks - done)
            t = time.perf_counter()
            node.mine(step, wallet.address)
            done += step
            rates[f"to_height_{done}"] = round(step / (time.perf_counter() - t), 1)
        out["mine_empty_blocks_per_s"] = rates
        out["getblockcount"] = _lat(lambda: node.rpc("getblockcount"), 500)
        coins = [u for u in wallet.utxos() if u.value > 0][: args.txs]
        raws = []
        for c in coins:
            tx = wallet.build([(wallet.address, c.value // 2)], inputs=[c], feerate=3)
            raws.append(bytes(tx.serialize()).hex())
        t = time.perf_counter()
        for raw in raws:
            node.rpc("sendrawtransaction", raw)
        out["sendrawtransaction_per_s"] = round(len(raws) / (time.perf_counter() - t), 1)
        t = time.perf_counter()
        block = node.mine(1)[0]
        out["mine_block_with_txs_s"] = round(time.perf_counter() - t, 4)
        out["getblock_txs"] = len(raws) + 1
        out["getblock_v2"] = _lat(lambda: node.rpc("getblock", block, 2), 50)
        out["getblock_v1"] = _lat(lambda: node.rpc("getblock", block, 1), 50)
        out["scantxoutset_utxos"] = node.rpc("scantxoutset", "start", [])["txouts"]
        out["scantxoutset"] = _lat(
            lambda: node.rpc("scantxoutset", "start", [f"addr({wallet.address})"]), 10
        )
        t = time.perf_counter()
        node.reorg(1)
        out["reorg_depth1_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
