"""PostgreSQL itself killed (SIGKILL to the postmaster) during a stream of
writes through an API process: every write the API acknowledged (201) is in
the database after PostgreSQL restarts (crash recovery from the WAL), the
API answers problem+json while the database is gone (no hang, no
traceback) and serves again once it is back, without a restart of its own.

The cluster is a throwaway one this test starts (tests/pg.py ``Cluster``,
fsync on), never the shared server. The writes are ads (``POST
/api/p2p-crypto/orders``) by one seller, from four client threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests import pg
from tests.functional.evm_fixtures import EvmChain
from tests.functional.fleet_fixtures import NodeProcess, node_env, wait_http


@pytest.fixture
def cluster() -> Iterator[pg.Cluster]:
    c = pg.Cluster(durable=True)
    c.start()
    yield c
    c.stop()


def test_acknowledged_writes_survive_a_postgres_kill(
    cluster: pg.Cluster, evm_chain: EvmChain, tmp_path: Path
) -> None:
    from node.db.migrate import upgrade
    from node.db.session import make_engine, make_sessionmaker, transaction
    from node.trades import create_user

    db_url = pg.create_database(cluster.url, "escrowd")
    engine = make_engine(db_url)
    upgrade(engine)
    with transaction(make_sessionmaker(engine)) as s:
        _u, token = create_user(s, username="seller", role="trader")
    engine.dispose()

    port = pg._free_port()  # noqa: SLF001 - the helper every test uses
    env = node_env(db_url, tmp_path / "api", evm_chain.anvil.url, evm_chain.deployment)
    api = NodeProcess.start(env, ["api", "--port", str(port)], tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=api)
    headers = {"Authorization": f"Bearer {token}"}
    eth = next(c for c in httpx.get(base + "/api/p2p-crypto/currencies").json()
               if c["symbol"] == "ETH")

    acked: dict[int, str] = {}
    failures: list[tuple[int, str]] = []
    phase = {"now": "before"}
    acked_in: dict[str, int] = {"before": 0, "down": 0, "after": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        n = 0
        with httpx.Client(base_url=base, headers=headers, timeout=15) as client:
            while not stop.is_set():
                n += 1
                amount = str(10**15 * (w * 100_000 + n))
                try:
                    r = client.post("/api/p2p-crypto/orders", json={
                        "crypto_currency_id": eth["id"], "amount": amount,
                        "price_per_unit": "1", "fiat_currency": "EUR",
                        "payment_methods": ["SEPA"],
                        "seller_address": evm_chain.seller.address})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append((0, type(exc).__name__))
                    time.sleep(0.05)
                    continue
                with lock:
                    if r.status_code == 201:
                        acked[int(r.json()["id"])] = amount
                        acked_in[phase["now"]] += 1
                    else:
                        assert r.headers["content-type"].startswith("application/problem+json")
                        failures.append((r.status_code, r.json()["code"]))
                        time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)
        cluster.kill9()
        phase["now"] = "down"
        time.sleep(1.0)
        cluster.start()
        phase["now"] = "after"
        deadline = time.monotonic() + 30
        while acked_in["after"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert api.terminate(30) == 0, api.log()

    assert acked_in["before"] > 0, acked_in
    assert acked_in["after"] >= 20, (acked_in, failures[-5:], api.log())
    assert failures, "the kill did not interrupt anything"
    assert all(code in (0, 500, 503) for code, _ in failures), failures[:5]
    with psycopg.connect(db_url) as conn:
        stored = dict(conn.execute(
            "SELECT id, amount::text FROM p2p_crypto_orders WHERE kind = 'ad'").fetchall())
    missing = {i: a for i, a in acked.items() if stored.get(i) != a}
    assert not missing, f"{len(missing)} acknowledged writes lost: {list(missing)[:10]}"
