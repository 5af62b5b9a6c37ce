"""EVM indexer catch-up: escrow events per second committed to PostgreSQL by
the node's watcher (node/chains/evm/watcher.py) catching up a long chain,
side by side with a plain web3.py loop (``w3.eth.get_logs`` + the contract's
``process_log`` + SQLAlchemy inserts) writing the same rows (events and the
headers of their blocks) into another database, in the same run.

The chain (>= 10,000 blocks, >= 100,000 escrow events of the real Escrow
contract: escrows opened, marked paid, disputed and resolved, 150 of each per
block) is built once with anvil and saved under benchmarks/.cache/
(--dump-state); later runs load it. Building takes a few minutes and prints
progress to stderr. See build_chain for why the event blocks are dense and
come after the empty ones.

Prints ONE JSON line. Targets: node >= 20,000 events/s and >= 10x the plain loop.

    .venv/bin/python benchmarks/evm_indexer_catchup.py [--rebuild] [--plain-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

CACHE = ROOT / "benchmarks" / ".cache"
STATE = CACHE / "evm_catchup_state.json"
META = CACHE / "evm_catchup_deployment.json"
PER_BLOCK = 150  # escrows opened per event block (=> 600 events per event block)
TARGET_EVENTS = 105_000
BLOCKS = 10_050


def log(msg: str) -> None:
    print(f"[catchup] {msg}", file=sys.stderr, flush=True)


def build_chain(state_path: Path, meta_path: Path) -> None:
    """Build the benchmark chain and dump it to ``state_path``.

    anvil recomputes the state root from scratch for every block, so a block
    costs time proportional to the escrow contract's storage (12 slots per
    escrow: ~90 ms per block at 2,000 escrows, measured). Interleaving empty
    blocks between the event blocks would make the build quadratic; so the
    empty blocks come first (cheap while storage is small) and the escrows
    follow in dense blocks: each event block opens K escrows, marks the
    previous batch paid, disputes the one before and resolves the one before
    that (Opened, MarkedPaid, Disputed, Resolved: 4 events per escrow)."""
    from eth_abi.abi import encode
    from eth_hash.auto import keccak
    from eth_utils.abi import function_signature_to_4byte_selector as sel
    from localchain.evm import Anvil
    from localchain.evm_deploy import cached_dev_accounts, deploy

    from node.chains.evm.rpc import JsonRpcClient

    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="escrowd-catchup-build-"))
    anvil = Anvil(data_dir=tmp, dump_state=state_path, prune_history=64,
                  extra_args=("--gas-limit", "1000000000")).start()
    try:
        dep = deploy(anvil.url, meta_path)
        accts = cached_dev_accounts()
        sellers = [accts[i].address for i in (1, 4, 5, 6)]
        buyer, arbitrator = accts[2].address, accts[3].address
        rpc = JsonRpcClient(anvil.url, timeout=600)
        escrow = dep.escrow
        zero = "0x" + "00" * 20
        open_sel = sel("open(bytes32,address,address,address,uint256,uint64,uint64)")
        paid_sel, dispute_sel = sel("mark_paid(bytes32)"), sel("dispute(bytes32)")
        resolve_sel = sel("resolve(bytes32,uint16)")
        amount = 10_000
        n_escrows = -(-TARGET_EVENTS // 4)
        n_event_blocks = -(-n_escrows // PER_BLOCK) + 3
        t0 = time.monotonic()
        head = int(rpc.call("eth_blockNumber"), 16)
        empty = BLOCKS - n_event_blocks - head
        for done in range(0, empty, 1000):
            rpc.call("anvil_mine", hex(min(1000, empty - done)))
        log(f"{empty} empty blocks in {time.monotonic() - t0:.0f}s")

        # explicit nonces: anvil serves a batch concurrently, and lets two
        # transactions of one sender race for the same nonce otherwise
        nonces = {a: int(rpc.call("eth_getTransactionCount", a, "pending"), 16)
                  for a in [*sellers, buyer, arbitrator]}

        def tx(frm: str, data: bytes, gas: int, value: int = 0) -> tuple[str, list[Any]]:
            nonce = nonces[frm]
            nonces[frm] = nonce + 1
            return ("eth_sendTransaction", [{"from": frm, "to": escrow, "data": "0x" + data.hex(),
                                             "value": hex(value), "gas": hex(gas),
                                             "nonce": hex(nonce)}])

        rpc.call("evm_setAutomine", False)
        batches: list[list[bytes]] = []
        counter = 0
        for b in range(n_event_blocks):
            calls: list[tuple[str, list[Any]]] = []
            batch: list[bytes] = []
            for _ in range(PER_BLOCK if counter < n_escrows else 0):
                seller = sellers[counter % len(sellers)]
                ref = counter.to_bytes(32, "big")
                data = open_sel + encode(
                    ["bytes32", "address", "address", "address", "uint256", "uint64", "uint64"],
                    [ref, buyer, arbitrator, zero, amount, 10**6, 2**40],
                )
                calls.append(tx(seller, data, 400_000, amount))
                batch.append(keccak(encode(["address", "bytes32"], [seller, ref])))
                counter += 1
            batches.append(batch)
            if b >= 1:
                calls += [tx(buyer, paid_sel + eid, 120_000) for eid in batches[b - 1]]
            if b >= 2:
                calls += [tx(buyer, dispute_sel + eid, 120_000) for eid in batches[b - 2]]
            if b >= 3:
                calls += [tx(arbitrator, resolve_sel + encode(["bytes32", "uint16"], [eid, 6000]),
                             300_000) for eid in batches[b - 3]]
            for i in range(0, len(calls), 500):
                rpc.batch(calls[i : i + 500])
            rpc.call("evm_mine")
            if b % 10 == 0 or b == n_event_blocks - 1:
                log(f"built {b + 1}/{n_event_blocks} event blocks "
                    f"({time.monotonic() - t0:.0f}s)")
        rpc.call("evm_setAutomine", True)
        pending = rpc.call("txpool_status")
        assert int(pending["pending"], 16) == 0, pending
        head = int(rpc.call("eth_blockNumber"), 16)
        n_logs = len(rpc.call("eth_getLogs", {"address": escrow, "fromBlock": "0x0",
                                              "toBlock": hex(head)}))
        log(f"chain built: {head} blocks, {n_logs} escrow logs in "
            f"{time.monotonic() - t0:.0f}s; dumping state")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta.update(head=head, logs=n_logs)
        meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        rpc.close()
    finally:
        anvil.stop()
    log(f"state saved to {state_path} ({state_path.stat().st_size / 1e6:.0f} MB)")


def fresh_db(server_url: str, name: str) -> tuple[str, Any]:
    from node.db.migrate import upgrade
    from node.db.session import make_engine
    from tests import pg

    url = pg.create_database(server_url, name)
    engine = make_engine(url)
    upgrade(engine)
    return url, engine


def run_node(anvil_url: str, meta: dict[str, Any], engine: Any) -> tuple[int, float]:
    from sqlalchemy import func, select

    from node.chains.evm.adapter import EvmAdapter
    from node.chains.evm.watcher import EvmWatcher
    from node.db.models import ChainEvent
    from node.db.session import make_sessionmaker

    sessions = make_sessionmaker(engine)
    adapter = EvmAdapter.connect(anvil_url, escrow_address=meta["escrow"])
    confirmed_keys: set[str] = set()
    watcher = EvmWatcher(
        adapter, sessions, start_block=meta["deploy_block"], confirmations=2,
        finality_depth=64, log_range=2000,
        on_confirmed=lambda _s, _c, keys, _n: confirmed_keys.update(keys),
    )
    t0 = time.perf_counter()
    r = watcher.sync()
    elapsed = time.perf_counter() - t0
    with sessions() as s:
        n = s.execute(select(func.count()).select_from(ChainEvent)).scalar_one()
    assert r.head == meta["head"], (r.head, meta["head"])
    log(f"node: {n} events, {len(confirmed_keys)} escrows confirmed in {elapsed:.2f}s")
    return int(n), elapsed


def run_plain(anvil_url: str, meta: dict[str, Any], engine: Any,
              limit_blocks: int | None) -> tuple[int, float]:
    """The loop a web3.py developer writes: get_logs per range, process_log
    per log, a block lookup per new block, ORM-free bulk insert per range."""
    from sqlalchemy import insert
    from web3 import Web3

    from node.chains.evm.artifacts import load
    from node.db.models import ChainBlock, ChainEvent
    from node.db.session import make_sessionmaker

    sessions = make_sessionmaker(engine)
    w3 = Web3(Web3.HTTPProvider(anvil_url, request_kwargs={"timeout": 120}))
    contract = w3.eth.contract(address=meta["escrow"], abi=load("Escrow").abi)
    by_topic = {}
    for ev_abi in (e for e in contract.abi if e["type"] == "event"):
        ev = getattr(contract.events, ev_abi["name"])()
        sig = f"{ev_abi['name']}({','.join(i['type'] for i in ev_abi['inputs'])})"
        by_topic[Web3.keccak(text=sig)] = (ev, {i["name"]: i["type"] for i in ev_abi["inputs"]})
    chain = f"evm:{meta['chain_id']}"
    start, head = meta["deploy_block"], meta["head"]
    end = min(head, start + limit_blocks) if limit_blocks else head
    n = 0
    t0 = time.perf_counter()
    for frm in range(start, end + 1, 2000):
        to = min(end, frm + 1999)
        logs = w3.eth.get_logs({"address": meta["escrow"], "fromBlock": frm, "toBlock": to})
        events, blocks = [], {}
        for lg in logs:
            ev, types = by_topic[lg["topics"][0]]
            d = ev.process_log(lg)
            if d["event"] in ("OwnershipTransferred", "OwnershipTransferStarted"):
                continue
            args = {}
            for k, v in d["args"].items():
                t = types[k]
                args[k] = ("0x" + v.hex() if t == "bytes32" else str(v) if t == "uint256" else v)
            bn = d["blockNumber"]
            if bn not in blocks:
                b = w3.eth.get_block(bn)
                blocks[bn] = {"chain": chain, "number": bn, "hash": "0x" + b["hash"].hex(),
                              "parent_hash": "0x" + b["parentHash"].hex(),
                              "timestamp": b["timestamp"]}
            events.append({"chain": chain, "block_number": bn,
                           "block_hash": "0x" + d["blockHash"].hex(),
                           "tx_hash": "0x" + d["transactionHash"].hex(),
                           "log_index": d["logIndex"], "name": d["event"],
                           "escrow_key": args.get("id", ""), "args": args})
        with sessions() as s, s.begin():
            if blocks:
                s.execute(insert(ChainBlock), list(blocks.values()))
            if events:
                s.execute(insert(ChainEvent), events)
        n += len(events)
    elapsed = time.perf_counter() - t0
    log(f"plain web3.py: {n} events in {elapsed:.2f}s")
    return n, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached chain")
    ap.add_argument("--plain-limit", type=int, default=None,
                    help="blocks for the plain web3.py loop (default: the whole chain)")
    args = ap.parse_args()

    from localchain.evm import Anvil

    from tests import pg

    if args.rebuild or not STATE.exists() or not META.exists():
        log("building the benchmark chain (once; cached under benchmarks/.cache/)")
        build_chain(STATE, META)
    meta = json.loads(META.read_text(encoding="utf-8"))

    tmp = Path(tempfile.mkdtemp(prefix="escrowd-catchup-"))
    t_load = time.monotonic()
    with pg.server() as server_url, Anvil(data_dir=tmp, load_state=STATE,
                                          prune_history=64) as anvil:
        log(f"anvil loaded {meta['head']} blocks in {time.monotonic() - t_load:.1f}s")
        node_db = f"escrowd_bench_node_{os.getpid()}"
        plain_db = f"escrowd_bench_plain_{os.getpid()}"
        _, node_engine = fresh_db(server_url, node_db)
        _, plain_engine = fresh_db(server_url, plain_db)
        try:
            n_node, t_node = run_node(anvil.url, meta, node_engine)
            n_plain, t_plain = run_plain(anvil.url, meta, plain_engine, args.plain_limit)
        finally:
            node_engine.dispose()
            plain_engine.dispose()
            pg.drop_database(server_url, node_db)
            pg.drop_database(server_url, plain_db)

    node_rate = n_node / t_node
    plain_rate = n_plain / t_plain
    print(json.dumps({
        "benchmark": "evm_indexer_catchup",
        "blocks": meta["head"] - meta["deploy_block"] + 1,
        "events": n_node,
        "node_seconds": round(t_node, 3),
        "node_events_per_s": round(node_rate),
        "plain_web3_events": n_plain,
        "plain_web3_seconds": round(t_plain, 3),
        "plain_web3_events_per_s": round(plain_rate),
        "speedup": round(node_rate / plain_rate, 1),
        "target_events_per_s": 20_000,
        "target_speedup": 10,
        "ok": node_rate >= 20_000 and node_rate / plain_rate >= 10,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
