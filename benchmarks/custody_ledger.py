"""Custody ledger throughput on PostgreSQL: entries per second through
``post_entry`` (one transaction per entry: row locks, legs, balance cache),
for deposits spread over many users and for holds/releases contended on one
user's account by two threads; then the time ``check_balances`` takes to
prove every cached balance against its legs.

Prints ONE JSON line.

    .venv/bin/python benchmarks/custody_ledger.py
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

from node.custody.ledger import (  # noqa: E402
    NODE_DEPOSIT,
    Leg,
    check_balances,
    hold,
    post_entry,
    release_hold,
    user_account,
)
from node.db.migrate import upgrade  # noqa: E402
from node.db.session import make_engine, make_sessionmaker, transaction  # noqa: E402
from tests import pg  # noqa: E402

DEPOSITS = int(os.environ.get("BENCH_DEPOSITS", "2000"))
USERS = 200
HOLDS_PER_THREAD = int(os.environ.get("BENCH_HOLDS", "500"))


def main() -> None:
    with pg.server() as server_url:
        name = f"escrowd_bench_custody_{uuid.uuid4().hex[:8]}"
        url = pg.create_database(server_url, name)
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            t0 = time.perf_counter()
            for i in range(DEPOSITS):
                user = 1 + i % USERS
                with transaction(sessions) as s:
                    post_entry(
                        s,
                        ref=f"dep:{i}",
                        kind="deposit",
                        legs=[
                            Leg(user_account(user, "available"), "BTC", 1_000),
                            Leg(NODE_DEPOSIT, "BTC", -1_000),
                        ],
                    )
            deposits_s = time.perf_counter() - t0

            def churn(n: int) -> None:
                for i in range(HOLDS_PER_THREAD):
                    with transaction(sessions) as s:
                        if i % 2 == 0:
                            hold(s, user_id=1, asset="BTC", amount=1, ref=f"h:{n}:{i}")
                        else:
                            release_hold(s, user_id=1, asset="BTC", amount=1, ref=f"r:{n}:{i}")

            threads = [threading.Thread(target=churn, args=(n,)) for n in range(2)]
            t1 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            contended_s = time.perf_counter() - t1
            t2 = time.perf_counter()
            with sessions() as s:
                mismatches = check_balances(s)
            check_s = time.perf_counter() - t2
        finally:
            engine.dispose()
            pg.drop_database(server_url, name)
    print(
        json.dumps(
            {
                "benchmark": "custody_ledger",
                "backend": "postgresql",
                "deposits": DEPOSITS,
                "deposit_entries_per_s": round(DEPOSITS / deposits_s, 1),
                "contended_entries": 2 * HOLDS_PER_THREAD,
                "contended_entries_per_s_one_account_2_threads": round(
                    2 * HOLDS_PER_THREAD / contended_s, 1
                ),
                "check_balances_ms": round(check_s * 1000, 1),
                "legs_checked": 2 * DEPOSITS + 4 * HOLDS_PER_THREAD,
                "mismatches": len(mismatches),
            }
        )
    )


if __name__ == "__main__":
    main()
