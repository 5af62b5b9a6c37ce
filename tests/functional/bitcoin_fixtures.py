"""Pytest fixtures for the local Bitcoin regtest node (plain fixtures; register
this module as a plugin or ``import *`` from it).

- ``bitcoind``: a fresh node process per test, on a free port with its own
  data dir; the data dir is kept (and its path printed) when the test failed,
  and the test fails if the node logged an error or a traceback (as Core's
  test framework fails on unexpected stderr).
- ``btc_datadir``: a data dir for tests that start/stop nodes themselves
  (restarts), kept and printed on failure.
- ``alice`` / ``bob``: DevWallets (the traders' own keys); alice has mature coins.
- ``assert_raises_rpc_error``: Core's test-framework helper.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from localchain.bitcoin import BitcoinRegtest, RPCError
from localchain.bitcoin.devwallet import DevWallet

__all__ = [
    "alice",
    "assert_raises_rpc_error",
    "assert_clean_log",
    "bitcoind",
    "bob",
    "btc_datadir",
    "start_bitcoind",
]

# lines in the node's log that mean something went wrong inside it
_BAD_LOG_MARKERS = ("Traceback (most recent call last)", " ERROR ", " CRITICAL ")


def start_bitcoind(tmp_path_factory: pytest.TempPathFactory, **kwargs: Any) -> BitcoinRegtest:
    data_dir = Path(tmp_path_factory.mktemp("btc-regtest"))
    return BitcoinRegtest(data_dir=data_dir, **kwargs).start()


def _failed(request: pytest.FixtureRequest, failed_before: int) -> bool:
    rep = getattr(request.node, "rep_call", None)  # set by tests/conftest.py's hook
    return (rep is not None and rep.failed) or request.session.testsfailed > failed_before


def assert_clean_log(node: BitcoinRegtest) -> None:
    """The node logged no error and no traceback."""
    if not node.log_path.exists():
        return
    text = node.log_path.read_text(encoding="utf-8", errors="replace")
    bad = [line for line in text.splitlines() if any(m in line for m in _BAD_LOG_MARKERS)]
    assert not bad, f"regtest node logged errors ({node.log_path}):\n" + "\n".join(bad[:20])


@pytest.fixture
def bitcoind(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BitcoinRegtest]:
    failed_before = request.session.testsfailed
    node = start_bitcoind(tmp_path_factory)
    try:
        yield node
    finally:
        node.stop()
    if _failed(request, failed_before):
        print(f"\nregtest data dir kept: {node.data_dir} (log: {node.log_path})")
        return
    try:
        assert_clean_log(node)
    except AssertionError:
        print(f"\nregtest data dir kept: {node.data_dir} (log: {node.log_path})")
        raise
    shutil.rmtree(node.data_dir, ignore_errors=True)


@pytest.fixture
def btc_datadir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    failed_before = request.session.testsfailed
    path = Path(tmp_path_factory.mktemp("btc-datadir"))
    yield path
    if _failed(request, failed_before):
        print(f"\nregtest data dir kept: {path} (log: {path / 'debug.log'})")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def alice(bitcoind: BitcoinRegtest) -> DevWallet:
    """A wallet with one mature 50 BTC coinbase (101 blocks mined to it)."""
    wallet = DevWallet(bitcoind, "alice")
    bitcoind.mine(101, wallet.address)
    return wallet


@pytest.fixture
def bob(bitcoind: BitcoinRegtest) -> DevWallet:
    return DevWallet(bitcoind, "bob")


def assert_raises_rpc_error(
    code: int, message: str | None, fn: Callable[..., Any], *args: Any
) -> RPCError:
    """Call ``fn(*args)``; it must raise RPCError with ``code`` and a message
    containing ``message`` (when given)."""
    try:
        fn(*args)
    except RPCError as err:
        assert err.code == code, f"expected code {code}, got {err.code}: {err.message}"
        if message is not None:
            assert message in err.message, f"{message!r} not in {err.message!r}"
        return err
    raise AssertionError(f"no RPCError raised (expected {code} {message!r})")
