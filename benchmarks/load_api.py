"""API load test: two ``escrowd api`` processes on one PostgreSQL database
holding 1,000,000 orders (and, for comparison, 10,000), driven by locust
(headless, on loopback, bounded in time).

For each size: a fresh database, migrated; sellers created through the node;
ads COPY'd in (spread over the sellers, prices and fiat currencies); two API
processes in production mode (an anvil with the contracts deployed supplies
the EVM configuration; no watcher, no relayer runs); then locust with
``--users`` users for ``--duration`` seconds per phase:

- ``reads``: the order book (``GET /api/p2p-crypto/orders?crypto_currency_id
  =..&fiat_currency=EUR&limit=20``) and a seller's order list (``GET
  /api/p2p-crypto/orders/my?limit=20``), half each;
- ``create`` (largest size only): ``POST /api/p2p-crypto/orders`` (committed).

Prints one JSON line: requests/s, p50/p99 (ms) and errors per endpoint and
phase, and the ratio of read p99 at the largest size to that at the smallest.
Targets (issue 7): reads >= 6,000 req/s with p99 <= 25 ms at 64 users;
creates >= 1,500 req/s with p99 <= 50 ms; zero errors; read p99 at 1M
within 1.5x of 10k.

    .venv/bin/python benchmarks/load_api.py [--orders 1000000] [--small 10000]
        [--duration 20] [--users 64]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "local-chain")]

SELLERS = 16
JWT_SECRET = "load-test-jwt-secret-" + "x" * 32
FIATS = ("EUR", "USD", "GBP", "NGN")

LOCUSTFILE = '''
import json, os, random
from locust import HttpUser, task, between, constant

HOSTS = os.environ["LOAD_HOSTS"].split(",")
TOKENS = os.environ["LOAD_TOKENS"].split(",")
CURRENCY = int(os.environ["LOAD_CURRENCY"])
PHASE = os.environ["LOAD_PHASE"]
ADDRESS = os.environ["LOAD_ADDRESS"]


class Trader(HttpUser):
    host = HOSTS[0]
    wait_time = constant(0)

    def on_start(self):
        self.client.base_url = random.choice(HOSTS)
        self.headers = {"Authorization": "Bearer " + random.choice(TOKENS)}

    @task
    def work(self):
        if PHASE == "reads":
            if random.random() < 0.5:
                self.client.get("/api/p2p-crypto/orders", name="book",
                                params={"crypto_currency_id": CURRENCY, "fiat_currency": "EUR",
                                        "limit": 20})
            else:
                self.client.get("/api/p2p-crypto/orders/my", name="list",
                                params={"limit": 20}, headers=self.headers)
        else:
            self.client.post("/api/p2p-crypto/orders", name="create", headers=self.headers,
                             json={"crypto_currency_id": CURRENCY, "amount": "1000000000000000",
                                   "price_per_unit": str(random.randint(2900, 3100)),
                                   "fiat_currency": "EUR", "payment_methods": ["SEPA"],
                                   "seller_address": ADDRESS})
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db_url: str, tmp: Path, anvil_url: str, dep: Any) -> dict[str, str]:
    from localchain.evm import dev_accounts

    accts = dev_accounts(10)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESCROWD_")},
        "ESCROWD_MODE": "production",
        "ESCROWD_DATA_DIR": str(tmp / "node"),
        "ESCROWD_DATABASE_URL": db_url,
        "ESCROWD_LOG_LEVEL": "WARNING",
        "ESCROWD_AUTH__JWT_SECRET": JWT_SECRET,
        # every locust user comes from 127.0.0.1 with one of a few tokens: the
        # per-IP and per-user limits (1200 and 600 a minute by default) would
        # measure the limiter, not the API
        "ESCROWD_AUTH__RATE_LIMIT_IP": "100000000/minute",
        "ESCROWD_AUTH__RATE_LIMIT_USER": "100000000/minute",
        "ESCROWD_EVM__RPC_URL": anvil_url,
        "ESCROWD_EVM__CHAIN_ID": str(dep.chain_id),
        "ESCROWD_EVM__ESCROW_ADDRESS": dep.escrow,
        "ESCROWD_EVM__START_BLOCK": str(dep.deploy_block),
        "ESCROWD_EVM__AGENT_KEY": accts[7].key,
        "ESCROWD_EVM__RELAYER_KEY": accts[9].key,
        "ESCROWD_BTC__ENABLED": "false",
        "ESCROWD_SOL__ENABLED": "false",
    }


def _seed(db_url: str, env: dict[str, str], n: int, seller_address: str) -> tuple[list[str], int]:
    """Sellers (with API tokens) through the node, then ``n`` ads by COPY."""
    import psycopg

    from node.config import load_settings
    from node.db.session import transaction
    from node.runtime import build_node
    from node.trades import create_user

    settings = load_settings(
        mode="production", database_url=db_url, data_dir=Path(env["ESCROWD_DATA_DIR"]),
        auth={"jwt_secret": JWT_SECRET}, btc={"enabled": False}, sol={"enabled": False},
        evm={"rpc_url": env["ESCROWD_EVM__RPC_URL"],
             "chain_id": int(env["ESCROWD_EVM__CHAIN_ID"]),
             "escrow_address": env["ESCROWD_EVM__ESCROW_ADDRESS"],
             "start_block": int(env["ESCROWD_EVM__START_BLOCK"]),
             "agent_key": env["ESCROWD_EVM__AGENT_KEY"],
             "relayer_key": env["ESCROWD_EVM__RELAYER_KEY"]},
    )
    node = build_node(settings)
    tokens, ids = [], []
    with transaction(node.sessions) as s:
        for i in range(SELLERS):
            user, token = create_user(s, username=f"seller{i}", role="trader")
            tokens.append(token)
            ids.append(user.id)
    node.stop()
    rng = random.Random(7)
    cols = ("kind, seller_id, crypto_currency_id, order_type, amount, min_amount, max_amount, "
            "remaining_amount, price_per_unit, fiat_currency, payment_methods, status, "
            "seller_address, created_at, updated_at")
    with psycopg.connect(db_url) as conn:
        currency = conn.execute(
            "SELECT id FROM crypto_currencies WHERE symbol = 'ETH'").fetchone()
        assert currency is not None
        cur_id = int(currency[0])
        now = "2026-01-01 00:00:00+00"
        with conn.cursor().copy(f"COPY p2p_crypto_orders ({cols}) FROM STDIN") as copy:
            for i in range(n):
                amount = 10**18 * rng.randint(1, 50)
                copy.write_row((
                    "ad", ids[i % SELLERS], cur_id, "sell", amount, 10**16, amount, amount,
                    f"{rng.uniform(2800, 3200):.2f}", FIATS[i % len(FIATS)], '["SEPA"]',
                    "active", seller_address, now, now,
                ))
        conn.execute("ANALYZE p2p_crypto_orders")
    return tokens, cur_id


def _locust(phase: str, hosts: list[str], tokens: list[str], currency: int, address: str,
            users: int, duration: int, tmp: Path) -> dict[str, Any]:
    lf = tmp / "locustfile.py"
    lf.write_text(LOCUSTFILE, encoding="utf-8")
    prefix = tmp / f"locust-{phase}-{time.monotonic_ns()}"
    env = {**os.environ, "LOAD_HOSTS": ",".join(hosts), "LOAD_TOKENS": ",".join(tokens),
           "LOAD_CURRENCY": str(currency), "LOAD_PHASE": phase, "LOAD_ADDRESS": address}
    subprocess.run(  # noqa: S603 - the pinned locust of this venv
        [str(ROOT / ".venv" / "bin" / "locust"), "-f", str(lf), "--headless", "-u", str(users),
         "-r", str(users), "-t", f"{duration}s", "--csv", str(prefix), "--only-summary",
         "--loglevel", "WARNING", "--stop-timeout", "5"],
        env=env, check=False, capture_output=True, timeout=duration + 120,
    )
    out: dict[str, Any] = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            out[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "errors": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"]),
                "p99_ms": float(row["99%"]),
            }
    return out


def _explain(db_url: str, currency: int) -> dict[str, float]:
    """Server-side time of the order book's two statements (count + page)."""
    import psycopg

    q = ("FROM p2p_crypto_orders WHERE kind = 'ad' AND status = 'active' "
         f"AND crypto_currency_id = {int(currency)} AND fiat_currency = 'EUR'")
    out = {}
    with psycopg.connect(db_url) as conn:
        for name, sql in (("book_count_ms", f"SELECT count(*) {q}"),
                          ("book_page_ms", f"SELECT id {q} ORDER BY price_per_unit, id LIMIT 20")):
            plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchone()
            assert plan is not None
            out[name] = round(float(plan[0][0]["Execution Time"]), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=20, help="seconds per locust phase")
    ap.add_argument("--users", type=int, default=64)
    args = ap.parse_args()

    import httpx
    from localchain.evm import Anvil, dev_accounts
    from localchain.evm_deploy import deploy

    from tests import pg

    tmp = Path(tempfile.mkdtemp(prefix="escrowd-load-"))
    seller_address = dev_accounts(2)[1].address
    result: dict[str, Any] = {"benchmark": "api_load", "users": args.users,
                              "duration_s": args.duration, "api_processes": 2}
    with pg.server() as server_url, Anvil(data_dir=tmp / "anvil") as anvil:
        dep = deploy(anvil.url, tmp / "deployment.json")
        for size in (args.small, args.orders):
            name = f"escrowd_load_{size}_{os.getpid()}"
            db_url = pg.create_database(server_url, name)
            procs: list[subprocess.Popen[bytes]] = []
            try:
                env = _env(db_url, tmp, anvil.url, dep)
                t0 = time.monotonic()
                tokens, currency = _seed(db_url, env, size, seller_address)
                seeded_s = time.monotonic() - t0
                hosts = []
                for i in range(2):
                    port = _free_port()
                    procs.append(subprocess.Popen(  # noqa: S603 - our own CLI
                        [str(ROOT / ".venv" / "bin" / "escrowd"), "api", "--port", str(port)],
                        env=env, stdout=subprocess.DEVNULL,
                        stderr=open(tmp / f"api-{size}-{i}.log", "wb"),  # noqa: SIM115
                    ))
                    hosts.append(f"http://127.0.0.1:{port}")
                for h in hosts:
                    deadline = time.monotonic() + 120
                    while True:
                        try:
                            if httpx.get(h + "/readyz", timeout=2).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        if time.monotonic() > deadline:
                            raise SystemExit(f"API did not start: see {tmp}")
                        time.sleep(0.2)
                key = f"orders_{size}"
                result[key] = {"seed_s": round(seeded_s, 1),
                               **_explain(db_url, currency),
                               "reads": _locust("reads", hosts, tokens, currency,
                                                seller_address, args.users, args.duration, tmp)}
                if size == args.orders:
                    result[key]["create"] = _locust("create", hosts, tokens, currency,
                                                    seller_address, args.users, args.duration,
                                                    tmp)
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    try:
                        p.wait(30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                pg.drop_database(server_url, name)
    small, big = result[f"orders_{args.small}"]["reads"], result[f"orders_{args.orders}"]["reads"]
    result["read_p99_ratio_big_vs_small"] = {
        ep: round(big[ep]["p99_ms"] / max(small[ep]["p99_ms"], 0.001), 2)
        for ep in big if ep in small
    }
    result["target"] = {"reads_rps": 6000, "reads_p99_ms": 25, "create_rps": 1500,
                        "create_p99_ms": 50, "errors": 0, "read_ratio_max": 1.5}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
