"""Races across two real API processes (``escrowd api`` on loopback) on one
PostgreSQL database, with a watcher process and, afterwards, a signer
process (``escrowd watch``/``escrowd sign``):

- 50 concurrent release requests for one escrow (each the full two-step
  call: fetch the payload, sign it, submit), spread over both APIs, end in
  exactly one release on chain: one relayed transaction, one ``Released``
  event, the trade completed; any other queued instruction for it is refused
  before a transaction is made;
- a release racing a dispute on one escrow ends in one consistent state:
  the chain shows one of the two, the relayer sent one transaction, and the
  database's trade and escrow agree with the chain.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from node.evm_trades import sign_typed_data
from tests import pg
from tests.functional.evm_fixtures import accounts
from tests.functional.fleet_fixtures import (
    AMOUNT,
    ESCROW_STATES,
    RELAYER,
    STATE,
    NodeProcess,
    World,
    build_world,
    converged,
    wait_http,
    wait_until,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str,
          pg_template: str) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("race-world"), pg_server, pg_template,
                           released=0, deposits=3)


@pytest.fixture
def fleet(world: World, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A watcher and two API processes on a fresh copy of the world."""
    world.reset_chain()
    name, db = world.fresh_db()
    procs = [NodeProcess.start(world.env(db, tmp_path / "watch"), ["watch", "--chain", "evm"],
                               tmp_path / "watch.log")]
    urls = []
    for i in range(2):
        port = pg._free_port()  # noqa: SLF001
        procs.append(NodeProcess.start(world.env(db, tmp_path / f"api{i}"),
                                       ["api", "--port", str(port)], tmp_path / f"api{i}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for u, p in zip(urls, procs[1:], strict=True):
            wait_http(u + "/readyz", proc=p)
        wait_until(lambda: trade_statuses(db, world.deposits) == {"funded"}, 60,
                   "the deposits to be credited")
        yield db, urls
    finally:
        for p in procs:
            assert p.terminate(30) == 0, p.log()
        pg.drop_database(world.server_url, name)


def trade_statuses(db: str, ids: list[int]) -> set[str]:
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT status FROM p2p_crypto_orders WHERE id = ANY(%s)",
                            (ids,)).fetchall()
    return {r[0] for r in rows}


def two_step(url: str, token: str, key: str, trade: int, action: str,
             extra: dict[str, Any] | None = None) -> httpx.Response:
    """What a wallet user does: get the payload, sign it, submit it."""
    path = f"{url}/api/p2p-crypto/orders/{trade}/{action}"
    headers = {"Authorization": f"Bearer {token}"}
    body = dict(extra or {})
    with httpx.Client(timeout=60, headers=headers) as c:
        r = c.post(path, json=body)
        if r.status_code >= 400:
            return r
        req = r.json()
        req = req.get("chain", req)
        return c.post(path, json={**body, "signature": sign_typed_data(key, req["payload"]),
                                  "expiry": req["expiry"]})


def run_signer(world: World, db: str, tmp: Path) -> None:
    """A signer process relays what was queued; the watcher indexes it."""
    p = NodeProcess.start(world.env(db, tmp / "sign"), ["sign", "--chain", "evm"],
                          tmp / "sign.log")
    try:
        wait_until(lambda: converged(db, world.anvil.block_number()), 60, "relaying")
    finally:
        assert p.terminate(30) == 0, p.log()


def relayer_nonce(world: World) -> int:
    return int(world.w3.eth.get_transaction_count(accounts()[RELAYER].address))


def jobs_of(db: str, key: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(db) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT action, status, tx_hash FROM relay_jobs WHERE escrow_key = %s", (key,))]


def events_of(db: str, key: str) -> list[str]:
    with psycopg.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT name FROM chain_events WHERE escrow_key = %s ORDER BY block_number", (key,))]


def test_fifty_concurrent_releases_over_two_apis_release_once(
    world: World, fleet: tuple[str, list[str]], tmp_path: Path
) -> None:
    db, urls = fleet
    trade = world.deposits[0]
    key = world.escrow_keys[trade]
    seller = accounts()[1]
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def release(i: int) -> None:
        start.wait()
        r = two_step(urls[i % 2], world.tokens["seller"], seller.key, trade, "release-escrow")
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=release, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 50
    codes = sorted({r.status_code for r in answers})
    assert set(codes) <= {201, 202, 409}, [r.text for r in answers if r.status_code >= 300][:3]
    assert any(r.status_code in (201, 202) for r in answers)
    nonce_before = relayer_nonce(world)
    run_signer(world, db, tmp_path)
    jobs = jobs_of(db, key)
    assert [j for j in jobs if j[1] == "confirmed"] == [
        j for j in jobs if j[2] is not None], jobs  # no failed job made a transaction
    assert sum(1 for j in jobs if j[1] == "confirmed") == 1, jobs
    assert relayer_nonce(world) - nonce_before == 1
    assert events_of(db, key).count("Released") == 1
    assert ESCROW_STATES[world.escrow.functions.escrows(key).call()[STATE]] == "released"
    assert trade_statuses(db, [trade]) == {"completed"}


def test_release_racing_a_dispute_ends_consistent(
    world: World, fleet: tuple[str, list[str]], tmp_path: Path
) -> None:
    db, urls = fleet
    trade = world.deposits[1]
    key = world.escrow_keys[trade]
    seller, buyer = accounts()[1], accounts()[2]
    answers: dict[str, httpx.Response] = {}
    start = threading.Barrier(2)

    def go(who: str) -> None:
        start.wait()
        if who == "seller":
            answers[who] = two_step(urls[0], world.tokens["seller"], seller.key, trade,
                                    "release-escrow")
        else:
            answers[who] = two_step(urls[1], world.tokens["buyer"], buyer.key, trade, "dispute",
                                    {"dispute_type": "other", "description": "race"})

    threads = [threading.Thread(target=go, args=(w,)) for w in ("seller", "buyer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for who, r in answers.items():
        assert r.status_code in (201, 202, 409), (who, r.text)
    nonce_before = relayer_nonce(world)
    run_signer(world, db, tmp_path)
    onchain = world.escrow.functions.escrows(key).call()
    state = ESCROW_STATES[onchain[STATE]]
    assert state in ("released", "disputed"), onchain
    assert relayer_nonce(world) - nonce_before == 1
    jobs = jobs_of(db, key)
    assert sum(1 for j in jobs if j[1] == "confirmed") == 1, jobs
    expected_trade = {"released": "completed", "disputed": "disputed"}[state]
    assert trade_statuses(db, [trade]) == {expected_trade}
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT status, funded_amount::text FROM p2p_crypto_escrows "
                           "WHERE escrow_key = %s", (key,)).fetchone()
    assert row is not None and row[0] == state and int(row[1]) == onchain[AMOUNT]
    names = events_of(db, key)
    assert names.count("Released") + names.count("Disputed") == 1, names
