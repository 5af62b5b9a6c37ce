"""A real Redis for the rate-limit tests: the one on 127.0.0.1:6379 when it
answers (a dedicated DB number, a key prefix per test, its keys deleted
afterwards), else a throwaway ``redis-server`` on a free port (no
persistence), stopped after the session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

LOCAL_URL = "redis://127.0.0.1:6379"
TEST_DB = 13  # not the default DB 0 another user of the local server may rely on
REDIS_SERVER = "/usr/bin/redis-server"


@dataclass(frozen=True)
class RedisTarget:
    url: str  # redis://host:port/db
    prefix: str  # key prefix of this test's rate limits


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """``redis://host:port/db`` of a Redis this session may use."""
    url = f"{LOCAL_URL}/{TEST_DB}"
    if _reachable(url):
        yield url
        return
    server = shutil.which("redis-server") or REDIS_SERVER
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/{TEST_DB}"
    try:
        deadline = time.monotonic() + 10
        while not _reachable(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_target(redis_server_url: str) -> Iterator[RedisTarget]:
    """A fresh key prefix on the session's Redis; its keys deleted afterwards."""
    prefix = f"escrowd-test-{uuid.uuid4().hex[:12]}"
    yield RedisTarget(url=redis_server_url, prefix=prefix)
    client = redis.Redis.from_url(redis_server_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
