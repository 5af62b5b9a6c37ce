"""What the market adds to opening a trade; prints ONE JSON line.

``match_ad`` runs, each call in its own transaction, for a buyer who already
opened ``--prior`` trades in the last 24 hours:

- ``baseline``: a fixed-price ad, no limits (the node before the market slice);
- ``market``: a margin ad priced from the stored index (median of the quotes of
  three sources) and both parties' 24-hour limits summed over their trades of
  the last 24 hours, valued through the index, with their user rows locked.

Default database: SQLite in a temporary directory (the embedded default);
``--database-url postgresql://...`` for an empty PostgreSQL database.
Run: ``.venv/bin/python benchmarks/market_match.py``.
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
from node.db.models import P2POrder
from node.db.session import make_engine, make_sessionmaker, transaction
from node.market.limits import Limit
from node.market.opening import OpeningPolicy
from node.market.prices import store_quotes
from node.market.pricing import Quote
from node.trades import AdInput, CurrencySpec, create_ad, create_user, match_ad, upsert_currency

TARGET_P95_OVERHEAD_MS = 25.0
ETH = 10**18


def run(url: str, prior: int, calls: int) -> dict[str, object]:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    big = Limit(per_trade=Decimal(10**12), per_24h=Decimal(10**15))
    market = OpeningPolicy(
        limits_enabled=True,
        limits=dict.fromkeys(("unverified", "basic", "verified", "trusted"), big),
    )
    with transaction(sessions) as s:
        seller, _ = create_user(s, username="bench-seller")
        buyer, _ = create_user(s, username="bench-buyer")
        eth = upsert_currency(s, CurrencySpec("Ether", "ETH", "evm", "bench", 18))
        store_quotes(
            s,
            [
                Quote(src, "ETH", "EUR", Decimal(p), now)
                for src, p in (("a", "3000"), ("b", "3010"), ("c", "2990"))
            ]
            + [Quote("a", "ETH", "USD", Decimal("3300"), now)],
            now=now,
        )

        def ad(**kw: object) -> int:
            data = AdInput(
                crypto_currency_id=eth.id,
                amount=10**9 * ETH,
                min_amount=1,
                max_amount=10**9 * ETH,
                fiat_currency="EUR",
                payment_methods=["SEPA"],
                seller_address="0x" + "11" * 20,
                **kw,
            )  # type: ignore[arg-type]
            return create_ad(s, seller=seller, data=data, now=now, policy=market).id

        fixed_ad = ad(price_per_unit=Decimal(3000))
        margin_ad = ad(price_per_unit=None, price_type="margin", margin_bps=150)
        s.add_all(
            P2POrder(
                kind="trade",
                parent_id=fixed_ad,
                seller_id=seller.id,
                buyer_id=buyer.id,
                crypto_currency_id=eth.id,
                amount=ETH,
                price_per_unit=Decimal(3000),
                fiat_currency="EUR",
                total_amount=Decimal(3000),
                payment_methods=["SEPA"],
                status="funded",
                matched_at=now - timedelta(minutes=i % 1000),
            )
            for i in range(prior)
        )
        buyer_id = buyer.id

    def timed(ad_id: int, policy: OpeningPolicy) -> list[float]:
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            with transaction(sessions) as s:
                who = s.get(type(seller), buyer_id)
                assert who is not None
                match_ad(
                    s,
                    ad_id=ad_id,
                    buyer=who,
                    amount=ETH // 100,
                    buyer_address="0x" + "22" * 20,
                    now=datetime.now(UTC),
                    policy=policy,
                )
            out.append((time.perf_counter() - t0) * 1000)
        return out

    timed(fixed_ad, OpeningPolicy())  # warm-up (connections, statement caches)
    base = timed(fixed_ad, OpeningPolicy())
    with_market = timed(margin_ad, market)
    engine.dispose()

    def stats(xs: list[float]) -> dict[str, float]:
        q = statistics.quantiles(xs, n=20)
        return {"p50_ms": round(statistics.median(xs), 2), "p95_ms": round(q[18], 2)}

    b, m = stats(base), stats(with_market)
    overhead = round(m["p95_ms"] - b["p95_ms"], 2)
    return {
        "baseline": b,
        "market": m,
        "p95_overhead_ms": overhead,
        "meets_target": overhead <= TARGET_P95_OVERHEAD_MS,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--database-url")
    ap.add_argument("--prior", type=int, default=2000, help="buyer's trades in the last 24 h")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        result = run(url, args.prior, args.calls)
    print(
        json.dumps(
            {
                "benchmark": "market_match",
                "database": url.split(":", 1)[0],
                "prior_trades_24h": args.prior,
                "calls": args.calls,
                **result,
                "target": {"p95_overhead_ms": TARGET_P95_OVERHEAD_MS},
                "python": platform.python_version(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
