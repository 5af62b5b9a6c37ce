"""Restarts of the local regtest node on the same data dir.

Proves that after a clean stop the chain (tip, heights, block data), the
UTXO set (scantxoutset, gettxout), the transaction index (getrawtransaction)
and the mempool come back; that this holds after a reorg (the kernel's
chainstate was regenerated); and that after a hard kill the node still starts
with a consistent chain and UTXO set and keeps mining.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet

from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import assert_clean_log


def _snapshot(node: BitcoinRegtest, wallet: DevWallet) -> dict[str, object]:
    return {
        "height": node.height(),
        "tip": node.tip(),
        "utxos": wallet.utxos(spendable_only=False),
        "txouts": node.rpc("scantxoutset", "start", [])["txouts"],
        "mempool": sorted(node.rpc("getrawmempool")),
        "tips": node.rpc("getchaintips"),
    }


@pytest.mark.parametrize("with_reorg", [False, True])
def test_restart_keeps_state(btc_datadir: Path, with_reorg: bool) -> None:
    data_dir = btc_datadir
    node = BitcoinRegtest(data_dir=data_dir).start()
    alice = DevWallet(node, "alice")
    bob = DevWallet(node, "bob")
    try:
        node.mine(101, alice.address)
        confirmed = alice.send(bob.address, 4_000_000)
        node.mine(1)
        if with_reorg:
            node.reorg(2)
        pending = alice.send(bob.address, 1_000_000)
        before = _snapshot(node, alice)
        bob_before = bob.utxos()
        block = node.rpc("getblock", node.rpc("getrawtransaction", confirmed, True)["blockhash"], 2)
    finally:
        node.stop()
    assert not (data_dir / ".cookie").exists()

    node = BitcoinRegtest(data_dir=data_dir).start()
    alice.node = bob.node = node
    try:
        assert _snapshot(node, alice) == before
        assert bob.utxos() == bob_before
        assert node.rpc("getrawtransaction", confirmed, True)["confirmations"] >= 1
        assert node.rpc("getblock", block["hash"], 2) == {
            **block,
            "confirmations": block["confirmations"],
        }
        assert pending in node.rpc("getrawmempool")
        # and it carries on
        node.mine(1)
        assert node.rpc("getrawtransaction", pending, True)["confirmations"] == 1
    finally:
        node.stop()
    assert_clean_log(node)


def test_restart_after_kill(btc_datadir: Path) -> None:
    data_dir = btc_datadir
    node = BitcoinRegtest(data_dir=data_dir).start()
    alice = DevWallet(node, "alice")
    try:
        node.mine(110, alice.address)
        alice.send(alice.address, 5_000_000)
        node.mine(5)
        height, tip = node.height(), node.tip()
        balance = alice.balance()
    finally:
        node.kill()
    node = BitcoinRegtest(data_dir=data_dir).start()
    alice.node = node
    try:
        assert node.height() == height and node.tip() == tip
        assert alice.balance() == balance
        node.mine(2)
        assert node.height() == height + 2
    finally:
        node.stop()
