"""Recomputing one trader's reputation (what the trade-ended hook does inside
the watcher's transaction); prints ONE JSON line.

A seller with ``--trades`` ended trades (completed, refunded, expired, over
120 days) and some disputes; ``recompute`` runs ``--runs`` times, each in its
own transaction. Default database: SQLite in a temporary directory;
``--database-url postgresql://...`` for an empty PostgreSQL database.
Run: ``.venv/bin/python benchmarks/market_reputation.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from node.db.migrate import upgrade
from node.db.models import P2PDispute, P2POrder
from node.db.session import make_engine, make_sessionmaker, transaction
from node.market.reputation import recompute
from node.trades import CurrencySpec, create_user, upsert_currency

TARGET_P95_MS = 50.0
STATUSES = ("completed", "completed", "completed", "refunded", "expired")


def run(url: str, trades: int, runs: int) -> dict[str, object]:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        seller, _ = create_user(s, username="bench-seller")
        buyer, _ = create_user(s, username="bench-buyer")
        eth = upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "bench", 18))
        orders = [
            P2POrder(
                kind="trade",
                seller_id=seller.id,
                buyer_id=buyer.id,
                crypto_currency_id=eth.id,
                amount=10**18,
                price_per_unit=Decimal(3000),
                fiat_currency="EUR" if i % 4 else "USD",
                total_amount=Decimal(3000),
                payment_methods=[],
                status=STATUSES[i % len(STATUSES)],
                matched_at=now - timedelta(hours=i % 2880 + 1),
                paid_at=now - timedelta(hours=i % 2880, minutes=10),
                completed_at=now - timedelta(hours=i % 2880),
            )
            for i in range(trades)
        ]
        s.add_all(orders)
        s.flush()
        s.add_all(
            P2PDispute(
                p2p_order_id=o.id,
                initiator_user_id=buyer.id,
                dispute_type="x",
                description="x",
                status="resolved",
                buyer_bps=7000,
                evidence=[],
            )
            for o in orders[:: max(1, trades // 50)]
        )
        seller_id = seller.id
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with transaction(sessions) as s:
            recompute(s, seller_id)
        times.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    p95 = statistics.quantiles(times, n=20)[18]
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95, 2),
        "meets_target": p95 <= TARGET_P95_MS,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url")
    ap.add_argument("--trades", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        result = run(url, args.trades, args.runs)
    print(
        json.dumps(
            {
                "benchmark": "market_reputation",
                "database": url.split(":", 1)[0],
                "trades": args.trades,
                "runs": args.runs,
                **result,
                "target": {"p95_ms": TARGET_P95_MS},
                "python": platform.python_version(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
