"""Trade events: how fast they are written, pushed over SSE and delivered to
webhooks, on PostgreSQL (the server the test suite uses, or a throwaway one).

- ``emit_per_s``: transactions per second that each change one trade and
  commit one event (the outbox row, its webhook delivery row, and the
  commit-order number under the advisory lock).
- ``sse_latency_ms``: from an event's commit to its frame arriving at a
  client of a real HTTP server (uvicorn) holding an SSE stream; p50 / p95 /
  max over ``SSE_EVENTS`` events, for the default poll period (500 ms) and
  for 50 ms. Expect about half the poll period.
- ``webhook_per_s``: signed deliveries per second by the delivery job to a
  local HTTP server that answers 204 at once (one node process, one thread).

Target: SSE p95 latency below the poll period + 100 ms; webhooks at least
100 deliveries per second. Prints ONE JSON line.

    .venv/bin/python benchmarks/events_delivery.py
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

EMITS = int(os.environ.get("BENCH_EMITS", "300"))
SSE_EVENTS = int(os.environ.get("BENCH_SSE_EVENTS", "40"))
WEBHOOKS = int(os.environ.get("BENCH_WEBHOOKS", "300"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(url: str) -> tuple[Any, Any, int, int, str]:
    from datetime import UTC, datetime

    from node.db.migrate import upgrade
    from node.db.session import make_engine, make_sessionmaker
    from node.trades import (
        AdInput,
        CurrencySpec,
        create_ad,
        create_user,
        match_ad,
        upsert_currency,
    )

    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        seller, _ = create_user(s, username="seller")
        buyer, token = create_user(s, username="buyer")
        cur = upsert_currency(s, CurrencySpec(name="Ether", symbol="ETH", chain="evm",
                                              network="31337", decimals=18))
        ad = create_ad(s, seller=seller, data=AdInput(
            crypto_currency_id=cur.id, amount=10, min_amount=1, max_amount=10,
            price_per_unit=Decimal(1), fiat_currency="EUR", payment_methods=["SEPA"],
            seller_address="0x" + "11" * 20))
        trade = match_ad(s, ad_id=ad.id, buyer=buyer, amount=5,
                         buyer_address="0x" + "22" * 20, now=datetime.now(UTC))
        return engine, sessions, trade.id, buyer.id, token


def _emit(sessions: Any, trade_id: int, kind: str, data: dict[str, Any]) -> None:
    from node.db.models import P2POrder
    from node.events.outbox import emit_trade_event

    with sessions() as s, s.begin():
        emit_trade_event(s, s.get(P2POrder, trade_id), kind, data)


def bench_emit(sessions: Any, trade_id: int) -> float:
    started = time.perf_counter()
    for i in range(EMITS):
        _emit(sessions, trade_id, "bench.emit", {"i": i})
    return EMITS / (time.perf_counter() - started)


def bench_sse(sessions: Any, trade_id: int, token: str, poll_ms: int) -> dict[str, float]:
    import httpx
    import uvicorn

    from api.app import create_app
    from node.chain_trades import ChainRegistry
    from node.config import Settings

    settings = Settings()
    settings.disputes.events.sse_poll_ms = poll_ms
    app = create_app(sessions=sessions, chains=ChainRegistry(), settings=settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    latencies: list[float] = []
    ready = threading.Event()
    with sessions() as s:
        from sqlalchemy import func, select

        from node.db.models_disputes_ext import TradeEvent

        last = s.scalar(select(func.max(TradeEvent.seq))) or 0

    def client() -> None:
        url = f"http://127.0.0.1:{port}/api/p2p-crypto/events/stream"
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(last)}
        with httpx.stream("GET", url, headers=headers, params={"max_duration_s": 120},
                          timeout=130) as r:
            ready.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    body = json.loads(line[6:])
                    latencies.append(time.perf_counter() - body["data"]["t"])
                    if len(latencies) >= SSE_EVENTS:
                        return

    reader = threading.Thread(target=client)
    reader.start()
    ready.wait(10)
    time.sleep(0.2)
    for _ in range(SSE_EVENTS):
        _emit(sessions, trade_id, "bench.sse", {"t": time.perf_counter()})
        time.sleep(0.037)  # not a divisor of the poll period
    reader.join(60)
    server.should_exit = True
    thread.join(10)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "poll_ms": poll_ms,
        "n": len(ms),
        "p50": round(statistics.median(ms), 1),
        "p95": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max": round(ms[-1], 1),
    }


def bench_webhooks(sessions: Any, trade_id: int, buyer_id: int) -> float:
    import httpx

    from node.db.models import User
    from node.disputes.settings import EventSettings
    from node.events.secrets import WebhookSecrets
    from node.events.webhooks import create_subscription, deliver_due

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    box = WebhookSecrets(b"benchmark secret " * 3)
    with sessions() as s, s.begin():
        user = s.get(User, buyer_id)
        create_subscription(s, user=user, url=f"http://127.0.0.1:{httpd.server_address[1]}/h",
                            secret=None, allow_private=True, max_per_user=10, secrets_box=box)
    for i in range(WEBHOOKS):
        _emit(sessions, trade_id, "bench.webhook", {"i": i})
    cfg = EventSettings()
    done = 0
    with httpx.Client() as client:
        started = time.perf_counter()
        while True:
            n = deliver_due(sessions, cfg, client=client, secrets_box=box, allow_private=True)
            done += n
            if n == 0:
                break
        elapsed = time.perf_counter() - started
    httpd.shutdown()
    assert done == WEBHOOKS, done
    return WEBHOOKS / elapsed


def main() -> None:
    from tests import pg

    with pg.server() as server_url:
        name = f"escrowd_bench_events_{uuid.uuid4().hex[:8]}"
        url = pg.create_database(server_url, name)
        try:
            engine, sessions, trade_id, buyer_id, token = _setup(url)
            emit = bench_emit(sessions, trade_id)
            sse = [bench_sse(sessions, trade_id, token, ms) for ms in (500, 50)]
            hooks = bench_webhooks(sessions, trade_id, buyer_id)
            engine.dispose()
        finally:
            pg.drop_database(server_url, name)
    print(json.dumps({
        "benchmark": "events_delivery",
        "database": "postgresql",
        "emit_per_s": round(emit, 1),
        "sse_latency_ms": sse,
        "webhook_per_s": round(hooks, 1),
        "target": {"sse_p95_ms_below": "poll_ms + 100", "webhook_per_s_at_least": 100},
    }))


if __name__ == "__main__":
    main()
