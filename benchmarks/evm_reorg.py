"""EVM reorg handling: how long the watcher takes to detect a reorg, roll back
to the common ancestor and re-apply the new branch (one watcher step, one
database transaction), and whether the mirror is right afterwards.

On a real anvil + PostgreSQL: blocks carrying escrow events (10 escrows
opened per block) are indexed, then the last ``depth`` blocks are replaced
(anvil_rollback) by a branch one block longer with other escrows in it.
Checked after each reorg: the stored events equal the chain's logs, old
branch events are gone, the stored block hashes are the chain's. Depths 10
(timed, median of 5), 50, 100 and 250; then a reorg deeper than
finality_depth must halt the watcher (ChainCursor.halted, ReorgTooDeepError).

Prints ONE JSON line. Target: depth 10 rolled back and re-applied <= 100 ms.

    .venv/bin/python benchmarks/evm_reorg.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

PER_BLOCK = 10


def main() -> int:
    from eth_abi.abi import encode
    from eth_utils.abi import function_signature_to_4byte_selector as sel
    from localchain.evm import Anvil
    from localchain.evm_deploy import cached_dev_accounts, deploy
    from sqlalchemy import select

    from node.chains.evm.adapter import EvmAdapter
    from node.chains.evm.events import STORED_TOPICS
    from node.chains.evm.rpc import JsonRpcClient
    from node.chains.evm.watcher import EvmWatcher
    from node.db.migrate import upgrade
    from node.db.models import ChainBlock, ChainCursor, ChainEvent
    from node.db.session import make_engine, make_sessionmaker
    from node.errors import ReorgTooDeepError
    from tests import pg

    accts = cached_dev_accounts()
    seller, buyer, arbitrator = accts[1].address, accts[2].address, accts[3].address
    open_sel = sel("open(bytes32,address,address,address,uint256,uint64,uint64)")
    counter = [0]

    tmp = Path(tempfile.mkdtemp(prefix="escrowd-reorg-"))
    with pg.server() as server_url, Anvil(data_dir=tmp, prune_history=1024) as anvil:
        dep = deploy(anvil.url)
        rpc = JsonRpcClient(anvil.url)

        def event_blocks(n: int) -> None:
            """Mine n blocks with PER_BLOCK escrow openings each."""
            rpc.call("evm_setAutomine", False)
            for _ in range(n):
                calls = []
                for _ in range(PER_BLOCK):
                    counter[0] += 1
                    data = open_sel + encode(
                        ["bytes32", "address", "address", "address", "uint256", "uint64",
                         "uint64"],
                        [counter[0].to_bytes(32, "big"), buyer, arbitrator, "0x" + "00" * 20,
                         1000, 10**6, 2**40])
                    calls.append(("eth_sendTransaction", [{
                        "from": seller, "to": dep.escrow, "data": "0x" + data.hex(),
                        "value": hex(1000), "gas": hex(400_000)}]))
                rpc.batch(calls)
                rpc.call("evm_mine")
            rpc.call("evm_setAutomine", True)

        def reorg(depth: int) -> set[str]:
            """Replace the last ``depth`` blocks by depth+1 others; the old
            branch's tx hashes."""
            head = int(rpc.call("eth_blockNumber"), 16)
            old = {lg["transactionHash"] for lg in rpc.call(
                "eth_getLogs", {"address": dep.escrow, "fromBlock": hex(head - depth + 1),
                                "toBlock": hex(head)})}
            rpc.call("anvil_rollback", depth)
            event_blocks(depth + 1)
            return old

        def check(sessions: Any, old_txs: set[str]) -> None:
            head = int(rpc.call("eth_blockNumber"), 16)
            chain_logs = {(int(lg["blockNumber"], 16), int(lg["logIndex"], 16),
                           lg["transactionHash"])
                          for lg in rpc.call("eth_getLogs", {"address": dep.escrow,
                                                             "fromBlock": "0x0",
                                                             "toBlock": hex(head)})
                          if lg["topics"][0] in STORED_TOPICS}
            with sessions() as s:
                stored = {(e.block_number, e.log_index, e.tx_hash)
                          for e in s.execute(select(ChainEvent)).scalars()}
                blocks = list(s.execute(select(ChainBlock)).scalars())
            stored_txs = {t for _, _, t in stored}
            assert not (stored_txs & old_txs), "events of the old branch survived"
            assert stored == chain_logs, "stored events differ from the chain's logs"
            hashes = rpc.batch([("eth_getBlockByNumber", (hex(b.number), False))
                                for b in blocks])
            for b, h in zip(blocks, hashes, strict=True):
                assert h["hash"] == b.hash, f"stored block {b.number} is not the chain's"

        def setup_db(name: str) -> Any:
            url = pg.create_database(server_url, name)
            engine = make_engine(url)
            upgrade(engine)
            return engine

        db_names = [f"escrowd_bench_reorg_{os.getpid()}", f"escrowd_bench_reorg2_{os.getpid()}"]
        engine = setup_db(db_names[0])
        sessions = make_sessionmaker(engine)
        adapter = EvmAdapter(rpc, chain_id=dep.chain_id, escrow_address=dep.escrow)
        watcher = EvmWatcher(adapter, sessions, start_block=dep.deploy_block,
                             confirmations=2, finality_depth=300, log_range=2000)
        results: dict[str, Any] = {}
        try:
            event_blocks(300)
            watcher.sync()
            timings = []
            for _ in range(5):
                old = reorg(10)
                t0 = time.perf_counter()
                r = watcher.step()
                timings.append((time.perf_counter() - t0) * 1000)
                assert r.reorg_depth == 10 and r.caught_up, r
                check(sessions, old)
            results["depth10_ms_median"] = round(statistics.median(timings), 1)
            results["depth10_ms_all"] = [round(t, 1) for t in timings]
            for depth in (50, 100, 250):
                old = reorg(depth)
                t0 = time.perf_counter()
                r = watcher.step()
                ms = (time.perf_counter() - t0) * 1000
                assert r.reorg_depth == depth and r.caught_up, r
                check(sessions, old)
                results[f"depth{depth}_ms"] = round(ms, 1)
            results["correct_up_to_depth"] = 250

            # a reorg deeper than finality halts
            engine2 = setup_db(db_names[1])
            sessions2 = make_sessionmaker(engine2)
            shallow = EvmWatcher(adapter, sessions2, start_block=dep.deploy_block,
                                 confirmations=2, finality_depth=64, log_range=2000)
            shallow.sync()
            reorg(100)
            try:
                shallow.step()
                halted = False
            except ReorgTooDeepError:
                with sessions2() as s:
                    halted = bool(s.execute(select(ChainCursor.halted)).scalar_one())
            results["deeper_than_finality_halts"] = halted
            engine2.dispose()
        finally:
            engine.dispose()
            for n in db_names:
                pg.drop_database(server_url, n)
            rpc.close()

    print(json.dumps({
        "benchmark": "evm_reorg",
        "events_per_block": PER_BLOCK,
        **results,
        "target_depth10_ms": 100,
        "ok": results["depth10_ms_median"] <= 100 and results["deeper_than_finality_halts"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
