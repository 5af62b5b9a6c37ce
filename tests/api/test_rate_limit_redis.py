"""Rate limits shared through a real Redis: two API instances (two nodes on one
database, as two ``escrowd api`` processes would be) configured with the same
``auth.rate_limit_storage`` count one limit together; with ``memory://`` each
counts its own. A malformed Redis URL stops start-up with an error naming the
setting; a Redis that cannot be reached at request time does not fail requests
(limits fall back to process memory, a warning is logged)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.security import RateLimits
from node.accounts.settings import AuthSettings
from node.config import load_settings
from node.errors import ConfigError
from node.runtime import build_node
from tests.api.redis_fixtures import *  # noqa: F403
from tests.api.redis_fixtures import RedisTarget

PUBLIC = "/api/p2p-crypto/currencies"
LIMIT = 5


@pytest.fixture
def instances(pg_url: str, tmp_path: Path) -> Iterator[Any]:
    """``instances(storage, prefix)``: two API clients over two nodes on one database."""
    with ExitStack() as stack:

        def make(storage: str, prefix: str = "escrowd") -> list[TestClient]:
            clients = []
            for i in range(2):
                settings = load_settings(
                    mode="dev", data_dir=tmp_path / f"n{i}", database_url=pg_url,
                    evm={"enabled": False},
                    auth={"jwt_secret": "test-jwt-secret-" + "x" * 32,
                          "rate_limit_storage": storage, "rate_limit_key_prefix": prefix,
                          "rate_limit_ip": f"{LIMIT}/minute"},
                )
                node = build_node(settings)
                stack.callback(node.stop)
                client = TestClient(node.app(), raise_server_exceptions=False)
                stack.callback(client.close)
                clients.append(client)
            return clients

        yield make


def _split(clients: list[TestClient], n: int) -> list[int]:
    """``n`` requests alternating between the instances; their status codes."""
    return [clients[i % 2].get(PUBLIC).status_code for i in range(n)]


def test_two_instances_share_one_limit_through_redis(
    instances: Any, redis_target: RedisTarget
) -> None:
    clients = instances(redis_target.url, redis_target.prefix)
    codes = _split(clients, LIMIT + 3)
    # each instance saw at most 4 requests (under the limit of 5 alone), yet the
    # combined count refused the 6th on
    assert codes == [200] * LIMIT + [429] * 3, codes
    r = clients[1].get(PUBLIC)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    import redis

    keys = redis.Redis.from_url(redis_target.url).keys(f"{redis_target.prefix}*")
    assert keys, "the limits were counted under the configured key prefix"


def test_memory_limits_are_per_instance(instances: Any) -> None:
    clients = instances("memory://")
    assert _split(clients, 2 * LIMIT) == [200] * (2 * LIMIT)
    assert clients[0].get(PUBLIC).status_code == 429  # each one's own limit still holds


@pytest.mark.parametrize("url", [
    "redis://localhost:notaport/0",
    "redis://localhost:6379/zero",
    "redis:///0",
    "mongodb://localhost/",
])
def test_malformed_storage_url_is_a_start_up_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"auth\.rate_limit_storage"):
        RateLimits(AuthSettings(rate_limit_storage=url))


def test_malformed_storage_url_stops_the_app(pg_url: str, tmp_path: Path) -> None:
    settings = load_settings(mode="dev", data_dir=tmp_path, database_url=pg_url,
                             evm={"enabled": False},
                             auth={"rate_limit_storage": "redis://cache:63x9/0"})
    node = build_node(settings)
    try:
        with pytest.raises(ConfigError, match=r"auth\.rate_limit_storage"):
            node.app()
    finally:
        node.stop()


def test_unreachable_redis_fails_open_to_memory(
    instances: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clients = instances(f"redis://127.0.0.1:{port}/0")
    with caplog.at_level(logging.WARNING, logger="escrowd.api.security"):
        codes = [clients[0].get(PUBLIC).status_code for _ in range(LIMIT + 1)]
    assert codes == [200] * LIMIT + [429], codes  # still limited, per process
    warnings = [r for r in caplog.records if "rate limit storage unreachable" in r.message]
    assert len(warnings) == 1  # once, not per request
