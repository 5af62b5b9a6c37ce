"""API load test: two ``escrowd api`` processes on one PostgreSQL database
holding 1,000,000 orders (and, for comparison, 10,000), driven by wrk (the
C load generator, from Debian's package; installed here when missing) on
loopback, bounded in time.

For each size: a fresh database, migrated; sellers created through the node;
ads COPY'd in (spread over the sellers, prices and fiat currencies), then
VACUUM ANALYZE (what autovacuum does to a live table); two API processes in
production mode (an anvil with the contracts deployed supplies the EVM
configuration; no watcher, no relayer runs); then, ``--connections``
connections split over the two processes (one wrk per process; a figure's
percentile is the worse of the two), ``--duration`` seconds per phase after a
short unmeasured warm-up:

- ``book``: the order book, ``GET /api/p2p-crypto/orders?crypto_currency_id
  =..&fiat_currency=EUR&limit=20``;
- ``list``: the sellers' order lists, ``GET /api/p2p-crypto/orders/my?limit=20``
  (bearer tokens of the 16 sellers in turn);
- ``uncached``: both again with the read cache off (``api.read_cache_ttl_s =
  0``): every request to the handler and the database;
- largest size only: ``create``, ``POST /api/p2p-crypto/orders`` (committed),
  and ``mixed``: the book read on most connections while a few post ads (each
  post invalidates the cached book in both processes).

Prints one JSON line: requests/s, p50/p99 (ms) and errors per phase, the ratio
of read p99 at the largest size to that at the smallest, the targets (issue
7) and which were met.

    .venv/bin/python benchmarks/load_api.py [--orders 1000000] [--small 10000]
        [--duration 20] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
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
LUA = ROOT / "benchmarks" / "load_api.lua"
WARMUP_S = 3
TARGET = {"reads_rps": 6000, "reads_p99_ms": 25, "create_rps": 1500, "create_p99_ms": 50,
          "errors": 0, "read_ratio_max": 1.5}


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
        # every connection comes from 127.0.0.1 with one of a few tokens: the
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
    with psycopg.connect(db_url, autocommit=True) as conn:
        # what autovacuum does to a live table: visibility map (index-only
        # scans) and statistics
        conn.execute("VACUUM ANALYZE p2p_crypto_orders")
    return tokens, cur_id


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("load_api: installing wrk (apt)", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=False,  # noqa: S603
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("load_api: wrk is required (Debian package 'wrk'); could not install it")
    return found


def _wrk(urls: list[str], connections: int, duration: int, load: dict[str, str]
         ) -> list[subprocess.Popen[bytes]]:
    """One wrk per API process, ``connections`` split between them."""
    per = max(1, connections // len(urls))
    return [
        subprocess.Popen(  # noqa: S603 - wrk with our script
            [_ensure_wrk(), "-t1", f"-c{per}", f"-d{duration}s", "--timeout", "10s",
             "-s", str(LUA), url],
            env={**os.environ, **load}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for url in urls
    ]


def _collect(procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    runs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
        if not lines:
            raise SystemExit(f"wrk failed: {err.decode()[-500:]}")
        runs.append(json.loads(lines[-1]))
    return {
        "requests": sum(r["requests"] for r in runs),
        "rps": round(sum(r["requests"] / (r["duration_us"] / 1e6) for r in runs), 1),
        "errors": sum(r["errors"] for r in runs),
        "p50_ms": round(max(r["p50_us"] for r in runs) / 1000, 2),
        "p99_ms": round(max(r["p99_us"] for r in runs) / 1000, 2),
        "max_ms": round(max(r["max_us"] for r in runs) / 1000, 1),
    }


def _loads(tokens: list[str], currency: int, address: str) -> dict[str, dict[str, str]]:
    body = json.dumps({"crypto_currency_id": currency, "amount": "1000000000000000",
                       "price_per_unit": "PRICE", "fiat_currency": "EUR",
                       "payment_methods": ["SEPA"], "seller_address": address})
    return {
        "book": {"LOAD_PATH": f"/api/p2p-crypto/orders?crypto_currency_id={currency}"
                              "&fiat_currency=EUR&limit=20"},
        "list": {"LOAD_PATH": "/api/p2p-crypto/orders/my?limit=20",
                 "LOAD_TOKENS": ",".join(tokens)},
        "create": {"LOAD_PATH": "/api/p2p-crypto/orders", "LOAD_METHOD": "POST",
                   "LOAD_TOKENS": ",".join(tokens), "LOAD_BODY": body},
    }


def _phase(urls: list[str], connections: int, duration: int, load: dict[str, str]
           ) -> dict[str, Any]:
    _collect(_wrk(urls, connections, WARMUP_S, load))
    return _collect(_wrk(urls, connections, duration, load))


def _explain(db_url: str, currency: int) -> dict[str, float]:
    """Server-side time of the order book's two statements as the API runs
    them for the first page (count capped 1,000 past the page, then the page)."""
    import psycopg

    q = ("FROM p2p_crypto_orders WHERE kind = 'ad' AND status = 'active' "
         f"AND crypto_currency_id = {int(currency)} AND fiat_currency = 'EUR'")
    out = {}
    with psycopg.connect(db_url) as conn:
        capped = f"SELECT count(*) FROM (SELECT id {q} LIMIT {20 + 1000}) AS s"
        for name, sql in (("book_count_ms", capped),
                          ("book_page_ms", f"SELECT id {q} ORDER BY price_per_unit, id LIMIT 20")):
            plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchone()
            assert plan is not None
            out[name] = round(float(plan[0][0]["Execution Time"]), 2)
    return out


class ApiPair:
    """Two ``escrowd api`` processes on one database."""

    def __init__(self, env: dict[str, str], tmp: Path, tag: str) -> None:
        import httpx

        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        for i in range(2):
            port = _free_port()
            self.procs.append(subprocess.Popen(  # noqa: S603 - our own CLI
                [str(ROOT / ".venv" / "bin" / "escrowd"), "api", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL,
                stderr=open(tmp / f"api-{tag}-{i}.log", "wb"),  # noqa: SIM115
            ))
            self.urls.append(f"http://127.0.0.1:{port}")
        for u in self.urls:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(u + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"API did not start: see {tmp}")
                time.sleep(0.2)
        time.sleep(0.5)  # their change listeners connect

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def _met(result: dict[str, Any], small: str, big: str) -> dict[str, bool]:
    reads = [result[k][ep] for k in (small, big) for ep in ("book", "list")]
    create = result[big]["create"]
    phases = [*reads, create, *result[big]["mixed"].values(),
              *(result[k]["uncached"][ep] for k in (small, big) for ep in ("book", "list"))]
    return {
        "reads": all(r["rps"] >= TARGET["reads_rps"] and r["p99_ms"] <= TARGET["reads_p99_ms"]
                     for r in reads),
        "create": create["rps"] >= TARGET["create_rps"]
        and create["p99_ms"] <= TARGET["create_p99_ms"],
        "errors": all(r["errors"] == 0 for r in phases),
        "read_ratio": all(v <= TARGET["read_ratio_max"]
                          for v in result["read_p99_ratio_big_vs_small"].values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=20, help="seconds per phase")
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()

    from localchain.evm import Anvil, dev_accounts
    from localchain.evm_deploy import deploy

    from tests import pg

    _ensure_wrk()
    version = subprocess.run(["wrk", "--version"], capture_output=True, text=True,  # noqa: S607
                             check=False).stdout.split("[")[0].strip()
    tmp = Path(tempfile.mkdtemp(prefix="escrowd-load-"))
    seller_address = dev_accounts(2)[1].address
    n, d = args.connections, args.duration
    result: dict[str, Any] = {"benchmark": "api_load", "tool": version, "connections": n,
                              "duration_s": d, "api_processes": 2}
    with pg.server() as server_url, Anvil(data_dir=tmp / "anvil") as anvil:
        dep = deploy(anvil.url, tmp / "deployment.json")
        for size in (args.small, args.orders):
            name = f"escrowd_load_{size}_{os.getpid()}"
            db_url = pg.create_database(server_url, name)
            key = f"orders_{size}"
            try:
                env = _env(db_url, tmp, anvil.url, dep)
                t0 = time.monotonic()
                tokens, currency = _seed(db_url, env, size, seller_address)
                out: dict[str, Any] = {"seed_s": round(time.monotonic() - t0, 1),
                                       **_explain(db_url, currency)}
                loads = _loads(tokens, currency, seller_address)
                api = ApiPair(env, tmp, f"{size}")
                try:
                    for ep in ("book", "list"):
                        out[ep] = _phase(api.urls, n, d, loads[ep])
                    if size == args.orders:
                        out["create"] = _phase(api.urls, n, d, loads["create"])
                        writers = max(2, n // 16)
                        reads = _wrk(api.urls, n - writers, d, loads["book"])
                        writes = _wrk(api.urls, writers, d, loads["create"])
                        out["mixed"] = {"book": _collect(reads), "create": _collect(writes)}
                finally:
                    api.stop()
                api = ApiPair({**env, "ESCROWD_API__READ_CACHE_TTL_S": "0"}, tmp,
                              f"{size}-uncached")
                try:
                    out["uncached"] = {ep: _phase(api.urls, n, d, loads[ep])
                                       for ep in ("book", "list")}
                finally:
                    api.stop()
                result[key] = out
            finally:
                pg.drop_database(server_url, name)
    small, big = f"orders_{args.small}", f"orders_{args.orders}"
    result["read_p99_ratio_big_vs_small"] = {
        ep: round(result[big][ep]["p99_ms"] / max(result[small][ep]["p99_ms"], 0.001), 2)
        for ep in ("book", "list")
    }
    result["target"] = TARGET
    result["met"] = _met(result, small, big)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
