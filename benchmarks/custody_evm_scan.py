"""Custody deposit scanning on EVM: the cost of finding payments to deposit
addresses per block, with 1 and with 10,000 watched addresses.

A real anvil gets ``BLOCKS`` blocks of ``TXS`` plain ETH transfers each (one
of them per block to the first deposit address); the custody adapter
(node.custody.evm_watch.CustodyEvmAdapter) then scans the whole range, timed,
median of ``REPEATS`` (interleaved), for each watched-set size. Matching is one set lookup
per transaction, so the per-block cost should not grow with the number of
addresses. Target: 10,000 addresses within 1.2x of 1 address.

Prints ONE JSON line.

    .venv/bin/python benchmarks/custody_evm_scan.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

BLOCKS = int(os.environ.get("BENCH_BLOCKS", "40"))
TXS = int(os.environ.get("BENCH_TXS", "50"))
REPEATS = 7


def main() -> None:
    from eth_account import Account
    from localchain.evm import Anvil, dev_accounts

    from node.chains.evm.adapter import EvmAdapter
    from node.custody.evm_watch import CustodyEvmAdapter
    from wallets.custody_keys import CustodyKeys

    keys = CustodyKeys("abandon " * 11 + "about")
    deposit = keys.evm_deposit(1).address
    many = [deposit] + [Account.create().address for _ in range(9_999)]
    tmp = Path(tempfile.mkdtemp())
    with Anvil(data_dir=tmp) as anvil:
        senders = dev_accounts(10)
        anvil.rpc("evm_setAutomine", False)
        first = anvil.block_number() + 1
        nonces = {a.address: 0 for a in senders}
        for _b in range(BLOCKS):
            for t in range(TXS):
                a = senders[t % len(senders)]
                to = deposit if t == 0 else Account.create().address
                tx = {
                    "to": to,
                    "value": 10**15,
                    "gas": 21_000,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 1,
                    "nonce": nonces[a.address],
                    "chainId": 31337,
                    "type": 2,
                }
                nonces[a.address] += 1
                raw = Account.sign_transaction(tx, a.key).raw_transaction
                anvil.rpc("eth_sendRawTransaction", "0x" + bytes(raw).hex())
            anvil.mine(1)
        last = anvil.block_number()
        evm = EvmAdapter.connect(anvil.url, escrow_address="0x" + "00" * 20)
        adapters = {}
        for n, watched in (("1", many[:1]), ("10000", many)):
            adapters[n] = CustodyEvmAdapter(evm, native="ETH", tokens={})
            adapters[n].watch(watched)
            adapters[n].events(first, last)  # warm-up
        times: dict[str, list[float]] = {"1": [], "10000": []}
        for _ in range(REPEATS):  # interleaved, so machine load hits both alike
            for n, adapter in adapters.items():
                t0 = time.perf_counter()
                batch = adapter.events(first, last)
                times[n].append(time.perf_counter() - t0)
                assert len(batch.events) == BLOCKS, len(batch.events)
        results = {n: statistics.median(ts) for n, ts in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "custody_evm_scan",
                "blocks": BLOCKS,
                "txs_per_block": TXS,
                "ms_per_block_1_address": round(results["1"] / BLOCKS * 1000, 2),
                "ms_per_block_10000_addresses": round(results["10000"] / BLOCKS * 1000, 2),
                "ratio": round(results["10000"] / results["1"], 3),
                "target_ratio": 1.2,
            }
        )
    )


if __name__ == "__main__":
    main()
