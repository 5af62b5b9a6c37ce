"""Cached reads in a fleet: two real API processes and a watcher process on
one PostgreSQL database, the read cache's lifetime set to 300 s so that
only the commit notifications (pg_notify) can make a process drop what it
cached. A write through one API process, a deposit the watcher credits, a
sign-out: each shows in the other API process' next reads within moments,
and a cached read there was really served from memory before."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pg
from tests.functional.evm_fixtures import accounts
from tests.functional.fleet_fixtures import NodeProcess, World, build_world, wait_http

BOOK = "/api/p2p-crypto/orders"
MINE = "/api/p2p-crypto/orders/my"
AUTH = "/api/p2p-crypto/auth"
SOON_S = 3.0  # notification latency is milliseconds; this is a generous bound


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str,
          pg_template: str) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("hot-reads-world"), pg_server, pg_template,
                           released=0, deposits=1)


@pytest.fixture
def fleet(world: World, tmp_path: Path) -> Iterator[tuple[World, str, list[str], Path]]:
    world.reset_chain()
    name, db = world.fresh_db()
    procs, urls = [], []
    for i in range(2):
        port = pg._free_port()  # noqa: SLF001
        env = world.env(db, tmp_path / f"api{i}", ESCROWD_API__READ_CACHE_TTL_S="300")
        procs.append(NodeProcess.start(env, ["api", "--port", str(port)],
                                       tmp_path / f"api{i}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for u, p in zip(urls, procs, strict=True):
            wait_http(u + "/readyz", proc=p)
        time.sleep(0.5)  # the change listeners connect (connecting empties the cache)
        yield world, db, urls, tmp_path
    finally:
        for p in procs:
            assert p.terminate(30) == 0, p.log()
        pg.drop_database(world.server_url, name)


def get(url: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + path, headers=headers, timeout=10)


def warm(url: str, path: str, token: str | None = None) -> Any:
    for _ in range(3):
        r = get(url, path, token)
        assert r.status_code == 200, r.text
        if r.headers["x-escrowd-cache"] == "hit":
            return r.json()
    raise AssertionError(f"{path} never came from memory at {url}")


def soon(url: str, path: str, token: str | None, ok: Any) -> httpx.Response:
    """Poll until ``ok(response)``; fails after SOON_S (the cache alone would
    have kept the old answer for 300 s)."""
    deadline = time.monotonic() + SOON_S
    while True:
        r = get(url, path, token)
        if ok(r):
            return r
        assert time.monotonic() < deadline, f"{path} at {url} still says {r.status_code} {r.text}"
        time.sleep(0.02)


def test_writes_elsewhere_reach_this_process_cache(
        fleet: tuple[World, str, list[str], Path]) -> None:
    world, db, (a, b), tmp = fleet
    seller_token = world.tokens["seller"]
    book = warm(a, BOOK)
    mine = warm(a, MINE, seller_token)
    assert warm(a, BOOK) == book

    # an ad posted through B
    eth = next(c for c in httpx.get(b + "/api/p2p-crypto/currencies").json()
               if c["symbol"] == "ETH")
    r = httpx.post(b + BOOK, headers={"Authorization": f"Bearer {seller_token}"}, json={
        "crypto_currency_id": eth["id"], "amount": str(10**18), "price_per_unit": "1",
        "fiat_currency": "EUR", "payment_methods": ["SEPA"],
        "seller_address": accounts()[1].address})
    assert r.status_code == 201, r.text
    new = r.json()["id"]
    ids = lambda r: [o["id"] for o in r.json()["data"]]  # noqa: E731
    assert new not in [o["id"] for o in book["data"]]
    soon(a, BOOK, None, lambda r: new in ids(r))
    soon(a, MINE, seller_token, lambda r: new in ids(r) and r.json() != mine)

    # a deposit credited by a watcher process: the buyer's list at A
    trade = world.deposits[0]
    buyer_token = world.tokens["buyer"]
    before = warm(a, MINE, buyer_token)
    assert next(o for o in before["data"] if o["id"] == trade)["status"] == "awaiting_funding"
    watcher = NodeProcess.start(world.env(db, tmp / "watch"), ["watch", "--chain", "evm"],
                                tmp / "watch.log")
    try:
        def funded(r: httpx.Response) -> bool:
            return next(o for o in r.json()["data"] if o["id"] == trade)["status"] == "funded"
        deadline = time.monotonic() + 60  # the watcher starts, catches up, confirms
        while not funded(get(b, MINE, buyer_token)):
            assert time.monotonic() < deadline, watcher.log()
            time.sleep(0.05)
        soon(a, MINE, buyer_token, funded)
    finally:
        assert watcher.terminate(30) == 0, watcher.log()


def test_a_sign_out_elsewhere_is_refused_here(
        fleet: tuple[World, str, list[str], Path]) -> None:
    _world, _db, (a, b), _tmp = fleet
    r = httpx.post(b + AUTH + "/register", json={"username": "carol",
                                                 "password": "correct horse battery staple 1"})
    assert r.status_code == 201, r.text
    access = r.json()["access_token"]
    warm(a, MINE, access)
    r = httpx.post(b + AUTH + "/logout", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 204, r.text
    r = soon(a, MINE, access, lambda r: r.status_code == 401)
    assert r.json()["code"] == "session_revoked"
