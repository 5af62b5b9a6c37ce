"""Matching engine throughput and latency on one core; prints ONE JSON line.

A fixed recorded stream (``random.Random(SEED)``: limit adds, cancels, market,
stop-market, stop-limit and OCO orders from 1,000 users) runs against a book of
10,000 resting orders. Reported for escrowd's engine:

- ``full``: the whole stream, matching only (no ledger);
- ``full_with_ledger``: the same with the double-entry ledger (holds, settlement,
  fees, releases);
- ``common``: the subset a plain limit order book supports (limit adds, cancels,
  market orders), so that it compares with the PyPI package on the same work.

The comparison package is ``pyorderbook`` (PyPI, pure Python, price-time
matching with heaps of price levels). It has no market, stop or OCO orders: an
adapter sends a market order as a limit at the far price and cancels what is
left, which is what a market order means; stop and OCO messages are not in the
``common`` stream. If the package is not installed the JSON says so.

Throughput is measured on passes with no per-message timer; latency on
separate, identical passes timing each message with ``perf_counter_ns`` (the
timer adds ~0.1 us). Each is the best of 3 passes; ``load_average`` tells how
busy the machine was (others' processes share its cores). Inputs (commands,
the package's order objects) are built before the clock starts.

"On one core" is measured two ways: ``msgs_per_s`` is wall-clock, and counts
the time the process waited while the scheduler ran others on its core;
``msgs_per_cpu_s`` counts only the CPU time the process got (the engine's own
cost on one core). On an idle machine the two agree; on a shared one (load
above the core count) only the second measures the engine. ``meets_target``
uses the CPU-time figure and the p99; ``meets_target_wall`` the wall-clock one.
Run: ``.venv/bin/python benchmarks/orderbook_engine.py``
(``--messages N`` to change the stream length).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.orderbook import (  # noqa: E402
    CancelOrder,
    Command,
    Deposit,
    Engine,
    Ledger,
    OrderType,
    PairSpec,
    PlaceOrder,
    Side,
)

SEED = 20261125
RESTING = 10_000
MID = 100_000
USERS = 1_000
TARGET_MSGS = 300_000
TARGET_P99_US = 20.0
PYPI_PACKAGE = "pyorderbook"
PYPI_PIN = "pyorderbook==0.4.9"

PAIR = PairSpec(
    symbol="BTC/USDT", base_asset="BTC", quote_asset="USDT", tick_size=1, step_size=1,
    min_price=1, max_price=10_000_000, min_quantity=1, max_quantity=1_000_000,
    maker_fee_bps=10, taker_fee_bps=20,
)

# (kind, user, side_is_buy, price, qty, stop, stop_limit, target_id)
Msg = tuple[str, int, bool, int, int, int, int, int]


def make_stream(n: int, seed: int = SEED) -> tuple[list[Msg], list[Msg]]:
    """The resting book (10,000 limit orders) and the recorded message stream."""
    rng = random.Random(seed)  # noqa: S311 - a benchmark's fixed data
    book: list[Msg] = []
    live: list[int] = []
    next_id = 1
    for i in range(RESTING):
        buy = i % 2 == 0
        price = MID - 1 - rng.randint(0, 500) if buy else MID + 1 + rng.randint(0, 500)
        book.append(("limit", rng.randint(1, USERS), buy, price, rng.randint(1, 100), 0, 0,
                     next_id))
        live.append(next_id)
        next_id += 1
    stream: list[Msg] = []
    for _ in range(n):
        r = rng.random()
        user = rng.randint(1, USERS)
        buy = rng.random() < 0.5
        sign = 1 if buy else -1
        qty = rng.randint(1, 100)
        if r < 0.42:  # limit add: mostly passive, ~1 in 10 crosses the spread
            offset = rng.randint(-30, 500)
            stream.append(("limit", user, buy, MID - sign * (1 + offset), qty, 0, 0, next_id))
            live.append(next_id)
            next_id += 1
        elif r < 0.82:  # cancel an earlier order (it may be filled or triggered by now)
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            stream.append(("cancel", user, buy, 0, 0, 0, 0, live.pop()))
        elif r < 0.88:
            stream.append(("market", user, buy, 0, rng.randint(1, 50), 0, 0, next_id))
            next_id += 1
        elif r < 0.94:  # stop-market or stop-limit, beyond the market
            stop = MID + sign * rng.randint(20, 300)
            kind = "stop_market" if rng.random() < 0.5 else "stop_limit"
            limit = stop + sign * rng.randint(0, 20) if kind == "stop_limit" else 0
            stream.append((kind, user, buy, limit, qty, stop, 0, next_id))
            live.append(next_id)
            next_id += 1
        else:  # OCO: limit leg on the good side, stop leg on the bad side
            limit = MID - sign * rng.randint(30, 400)
            stop = MID + sign * rng.randint(20, 300)
            stream.append(("oco", user, buy, limit, qty, stop, stop + sign * 5, next_id))
            live.append(next_id)
            next_id += 1
    return book, stream


def to_commands(msgs: Sequence[Msg]) -> list[Command]:
    out: list[Command] = []
    ts = 0
    for kind, user, buy, price, qty, stop, stop_limit, oid in msgs:
        ts += 1
        side = Side.BUY if buy else Side.SELL
        if kind == "limit":
            out.append(PlaceOrder(oid, user, side, OrderType.LIMIT, qty, price, ts=ts))
        elif kind == "cancel":
            out.append(CancelOrder(oid, None, ts=ts))
        elif kind == "market":
            out.append(PlaceOrder(oid, user, side, OrderType.MARKET, qty, ts=ts))
        elif kind == "stop_market":
            out.append(PlaceOrder(oid, user, side, OrderType.STOP_MARKET, qty, stop_price=stop,
                                  ts=ts))
        elif kind == "stop_limit":
            out.append(PlaceOrder(oid, user, side, OrderType.STOP_LIMIT, qty, price,
                                  stop_price=stop, ts=ts))
        else:
            out.append(PlaceOrder(oid, user, side, OrderType.OCO, qty, price, stop_price=stop,
                                  stop_limit_price=stop_limit, ts=ts))
    return out


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def measure(
    setup: Callable[[], Callable[[int], object]], count: int, repeats: int = 3
) -> dict[str, Any]:
    """``repeats`` throughput passes and ``repeats`` latency passes, each on a
    freshly set-up book; the best pass of each is reported (the least disturbed
    by other processes on the machine), with CPU time beside wall time."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        step = setup()
        gc.collect()
        gc.disable()
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(count):
                step(i)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            gc.enable()
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    best_lat: list[int] | None = None
    clock = time.perf_counter_ns
    for _ in range(repeats):
        step = setup()
        lat: list[int] = [0] * count
        gc.collect()
        gc.disable()
        try:
            for i in range(count):
                t = clock()
                step(i)
                lat[i] = clock() - t
        finally:
            gc.enable()
        lat.sort()
        if best_lat is None or percentile(lat, 0.99) < percentile(best_lat, 0.99):
            best_lat = lat
    assert best_lat is not None
    return {
        "messages": count,
        "seconds": round(best_wall, 4),
        "msgs_per_s": round(count / best_wall),
        "msgs_per_cpu_s": round(count / best_cpu),
        "mean_us": round(best_wall / count * 1e6, 3),
        "p50_us": round(percentile(best_lat, 0.50), 3),
        "p99_us": round(percentile(best_lat, 0.99), 3),
        "p999_us": round(percentile(best_lat, 0.999), 3),
        "max_us": round(best_lat[-1] / 1000, 1),
    }


def escrowd_setup(
    book: list[Command], stream: list[Command], ledger: bool
) -> Callable[[], Callable[[int], object]]:
    def setup() -> Callable[[int], object]:
        engine = Engine(PAIR, Ledger() if ledger else None)
        if ledger:
            for user in range(1, USERS + 1):
                engine.apply(Deposit(user, "BTC", 10**15))
                engine.apply(Deposit(user, "USDT", 10**18))
        for cmd in book:
            engine.apply(cmd)
        apply = engine.apply
        return lambda i: apply(stream[i])
    return setup


def pyorderbook_setup(book: list[Msg], stream: list[Msg]) -> Callable[[], Callable[[int], object]]:
    import pyorderbook as pob

    far = {True: 10**9, False: 1}

    def orders(msgs: Sequence[Msg]) -> list[Any]:
        # built before the clock, like the engine's commands
        out: list[Any] = []
        for kind, _user, buy, price, qty, _stop, _sl, _oid in msgs:
            side = pob.Side.BID if buy else pob.Side.ASK
            if kind == "limit":
                out.append(pob.Order(side, "BTC/USDT", price, qty))
            elif kind == "market":
                out.append(pob.Order(side, "BTC/USDT", far[buy], qty))
            else:
                out.append(None)
        return out

    def setup() -> Callable[[int], object]:
        b = pob.Book()
        by_id: dict[int, Any] = {}
        for msg, order in zip(book, orders(book), strict=True):
            b.match(order)
            by_id[msg[7]] = order
        prepared = orders(stream)
        kinds = [m[0] for m in stream]
        targets = [m[7] for m in stream]
        order_map = b.order_map

        def step(i: int) -> object:
            kind = kinds[i]
            if kind == "limit":
                order = prepared[i]
                by_id[targets[i]] = order
                return b.match(order)
            if kind == "cancel":
                order = by_id.pop(targets[i], None)
                if order is not None and order.id in order_map:
                    b.cancel(order)
                return None
            order = prepared[i]  # market: take at the far price, cancel the rest
            result = b.match(order)
            if order.quantity:
                b.cancel(order)
            return result

        return step

    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    pinned = False
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
            pinned = True
        except OSError:
            pass

    book_msgs, stream_msgs = make_stream(args.messages)
    common_msgs = [m for m in stream_msgs if m[0] in ("limit", "cancel", "market")]
    book_cmds = to_commands(book_msgs)
    stream_cmds = to_commands(stream_msgs)
    common_cmds = to_commands(common_msgs)

    # what the stream does in the engine (one run, not timed)
    probe = Engine(PAIR)
    for cmd in book_cmds:
        probe.apply(cmd)
    tally: dict[str, int] = {}
    for cmd in stream_cmds:
        for ev in probe.apply(cmd):
            name = type(ev).__name__
            tally[name] = tally.get(name, 0) + 1
    mix: dict[str, int] = {}
    for m in stream_msgs:
        mix[m[0]] = mix.get(m[0], 0) + 1

    full = measure(escrowd_setup(book_cmds, stream_cmds, ledger=False), len(stream_cmds))
    with_ledger = measure(escrowd_setup(book_cmds, stream_cmds, ledger=True), len(stream_cmds))
    common = measure(escrowd_setup(book_cmds, common_cmds, ledger=False), len(common_cmds))

    comparison: dict[str, Any]
    try:
        from importlib.metadata import version

        comparison = {
            "package": PYPI_PACKAGE,
            "version": version(PYPI_PACKAGE),
            "common": measure(pyorderbook_setup(book_msgs, common_msgs), len(common_msgs)),
        }
    except ImportError as exc:  # PackageNotFoundError is an ImportError too
        comparison = {
            "package": PYPI_PACKAGE,
            "missing": True,
            "detail": f"{exc.__class__.__name__}: {exc}",
            "install": f".venv/bin/uv pip install -p .venv/bin/python {PYPI_PIN}",
        }

    print(json.dumps({
        "benchmark": "orderbook_engine",
        "seed": SEED,
        "resting_orders": RESTING,
        "stream_mix": mix,
        "stream_events": tally,
        "escrowd": {"full": full, "full_with_ledger": with_ledger, "common": common},
        "comparison": comparison,
        "target": {"msgs_per_s": TARGET_MSGS, "p99_us": TARGET_P99_US},
        "meets_target": full["msgs_per_cpu_s"] >= TARGET_MSGS and full["p99_us"] <= TARGET_P99_US,
        "meets_target_wall": (
            full["msgs_per_s"] >= TARGET_MSGS and full["p99_us"] <= TARGET_P99_US
        ),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pinned_to_one_cpu": pinned,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }, sort_keys=False))


if __name__ == "__main__":
    main()
