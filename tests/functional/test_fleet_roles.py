"""Fleet roles with the real ``escrowd`` executable, on real anvil and
PostgreSQL:

- two ``escrowd watch --chain evm`` processes: one leads, the other waits;
  the leader is killed with SIGKILL and the other takes the role over and
  indexes what an ``escrowd sign`` process relays meanwhile (releases),
  until the database agrees with the chain; SIGTERM stops both gracefully
  (exit 0, leadership released); logs are JSON lines naming role and pid;
- two ``escrowd jobs`` processes run each periodic job once per period
  (claimed with SKIP LOCKED), and a claim never waits for a running one;
- ``/metrics`` and ``/readyz`` of an API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import pg
from tests.functional.fleet_fixtures import (
    ESCROWD,
    NodeProcess,
    World,
    build_world,
    check_chain,
    converged,
    wait_until,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str,
          pg_template: str) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("fleet-world"), pg_server, pg_template,
                           released=2, deposits=2)


@pytest.fixture
def world_db(world: World) -> Iterator[str]:
    world.reset_chain()
    name, url = world.fresh_db()
    yield url
    pg.drop_database(world.server_url, name)


class Cli:
    """A real ``escrowd`` process, JSON logs to a file."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ESCROWD_")}
        self.log_path = log
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [ESCROWD, "--log-format", "json", *args], env={**base, **env},
            stdout=subprocess.DEVNULL, stderr=open(log, "wb"),  # noqa: SIM115
        )

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def said(self, text: str) -> bool:
        return any(text in r.get("message", "") for r in self.records())

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def test_watcher_leadership_hands_over_when_the_leader_is_killed(
    world: World, world_db: str, tmp_path: Path
) -> None:
    env = world.env(world_db, tmp_path / "n", ESCROWD_LOG_LEVEL="INFO")
    a = Cli(env, ["watch", "--chain", "evm"], tmp_path / "a.log")
    procs = [a]
    try:
        wait_until(lambda: a.said("leader for watch:evm"), 120, "a leader")
        b = Cli(env, ["watch", "--chain", "evm"], tmp_path / "b.log")
        procs.append(b)
        wait_until(lambda: b.said("running watch"), 120, "the second watcher")
        with psycopg.connect(world_db) as conn:
            wait_until(lambda: {r[0] for r in conn.execute(
                "SELECT status FROM p2p_crypto_orders WHERE id = ANY(%s)",
                (world.deposits,))} == {"funded"}, 60, "deposits credited by the leader")
        time.sleep(1.5)
        assert not b.said("leader for watch"), "two leaders at once"
        a.proc.kill()  # kill -9 the leader
        assert a.proc.wait(10) == -signal.SIGKILL
        signer = Cli(env, ["sign", "--chain", "evm"], tmp_path / "sign.log")
        procs.append(signer)
        # the releases the signer relays are indexed by the new leader
        wait_until(lambda: converged(world_db, world.anvil.block_number()), 120,
                   "the new leader to index the relayed releases")
        assert b.said("leader for watch:evm")
        check_chain(world, world_db)
        with psycopg.connect(world_db) as conn:
            statuses = {r[0] for r in conn.execute(
                "SELECT status FROM p2p_crypto_orders WHERE id = ANY(%s)", (world.released,))}
        assert statuses == {"completed"}
        assert b.stop() == 0 and signer.stop() == 0
        assert b.said("released leadership of watch:evm")
        assert signer.said("released leadership of sign:evm")
        for rec in b.records() + signer.records():
            assert {"time", "level", "logger", "message", "pid", "role"} <= rec.keys()
        assert {r["role"] for r in b.records()} == {"watch"}
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)


def test_two_jobs_processes_run_each_job_once_per_period(
    world: World, world_db: str, tmp_path: Path
) -> None:
    procs = [NodeProcess.start(world.env(world_db, tmp_path / f"j{i}"), ["jobs"],
                               tmp_path / f"jobs{i}.log") for i in range(2)]
    try:
        with psycopg.connect(world_db, autocommit=True) as conn:
            def runs() -> dict[str, tuple[int, float]]:
                rows = conn.execute("SELECT id, runs, every_s FROM ops_jobs").fetchall()
                return {r[0]: (int(r[1]), float(r[2])) for r in rows}

            wait_until(lambda: runs() and all(n >= 1 for n, _ in runs().values()), 60,
                       "every job to run")
            started = time.monotonic()
            time.sleep(2.0)
            elapsed = time.monotonic() - started + 2.0
            got = runs()
    finally:
        for p in procs:
            assert p.terminate(30) == 0, p.log()
    assert "expire-unfunded" in got
    for job_id, (n, every_s) in got.items():
        # both processes fired every job at start: it ran once, then once
        # per period at most
        assert n <= 1 + int(elapsed // every_s), (job_id, n, every_s)
    assert got["expire-unfunded"][0] == 1


def test_a_claimed_job_is_skipped_not_waited_for(world_db: str) -> None:
    from node.db.session import make_engine, make_sessionmaker
    from node.ops.jobs import register_jobs, run_if_due

    engine = make_engine(world_db)
    sessions = make_sessionmaker(engine)
    register_jobs(sessions, [("slow", 60.0)])
    inside, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        ran.append("first")
        inside.set()
        release.wait(30)

    first = threading.Thread(target=run_if_due, args=(sessions, "slow", slow))
    first.start()
    assert inside.wait(30)
    # a second process firing now skips the locked job at once (the first
    # one is still blocked inside it)
    assert run_if_due(sessions, "slow", lambda: ran.append("second")) is False
    assert not release.is_set()
    release.set()
    first.join(30)
    # and afterwards it is not due until its period passed
    assert run_if_due(sessions, "slow", lambda: ran.append("third")) is False
    assert ran == ["first"]
    engine.dispose()


def test_metrics_and_readiness_of_an_api(
    world: World, world_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from fastapi.testclient import TestClient

    from node.ops.logs import ContextFilter
    from node.runtime import build_node
    from node.signing import sign_once
    from tests.functional.fleet_fixtures import node_settings

    node = build_node(node_settings(world.env(world_db, tmp_path / "api")))
    try:
        client = TestClient(node.app())
        assert client.get("/readyz").json()["status"] == "ready"
        headers = {"Authorization": f"Bearer {world.tokens['buyer']}"}
        assert client.get(f"/api/p2p-crypto/orders/{world.deposits[0]}",
                          headers=headers).status_code == 200
        # a state-changing request about a trade is logged with its trade id
        caplog.handler.addFilter(ContextFilter(role="api"))
        with caplog.at_level(logging.INFO, logger="escrowd.api.access"):
            trade = world.deposits[0]
            client.post(f"/api/p2p-crypto/orders/{trade}/payment", json={}, headers=headers)
        access = [r for r in caplog.records if r.name == "escrowd.api.access"]
        assert access and access[-1].trade_id == str(trade)  # type: ignore[attr-defined]
        assert access[-1].route == "/api/p2p-crypto/orders/{order_id}/payment"  # type: ignore[attr-defined]
        sign_once(node.sessions, chain="evm:31337", escrow_key="0x01", decision="split:3000",
                  payload_hash="0x" + "00" * 32, sign=lambda: "0xsig")
        text = client.get("/metrics").text
        assert ('escrowd_api_request_duration_seconds_count{method="GET",'
                'route="/api/p2p-crypto/orders/{order_id}",status="200"}') in text
        assert ('escrowd_signing_decisions_total{chain="evm:31337",decision="split",'
                'outcome="signed"} 1.0') in text
        assert 'escrowd_relayer_queue{chain="evm:31337",status="queued"} 2.0' in text
        assert 'escrowd_chain_head_block{chain="evm:31337"}' in text
        assert 'escrowd_confirmations_pending{chain="evm:31337"}' in text
        client.close()
    finally:
        node.stop()
