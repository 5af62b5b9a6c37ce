"""The Bitcoin watcher on the local regtest node and PostgreSQL: it finds
payments to many escrow addresses at once (one block scan, no per-address
polling), credits them only after the configured confirmations, shows
under-, over- and repeated payments, un-funds a trade when a reorg removes
its funding (also a reorg that happened while the node was down), and halts
on a reorg deeper than finality."""

from __future__ import annotations

from pathlib import Path

import pytest
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet
from sqlalchemy import func, select

from node.db.models import ChainEvent
from node.errors import ReorgTooDeepError
from tests.functional.btc_node_fixtures import *  # noqa: F403
from tests.functional.btc_node_fixtures import BtcNode, make_btc_node


def pay_many(wallet: DevWallet, outputs: list[tuple[str, int]]) -> str:
    return wallet.broadcast(wallet.build(outputs, feerate=2))


def test_deposits_to_many_escrows_in_one_block(btc_node: BtcNode) -> None:
    trades = [btc_node.open_trade(50_000 + i) for i in range(12)]
    txid = pay_many(btc_node.seller.wallet, [(addr, 50_000 + i)
                                             for i, (_t, addr) in enumerate(trades)])
    btc_node.sync(mine=1)
    for i, (trade_id, _addr) in enumerate(trades):
        esc = btc_node.escrow(trade_id)
        assert btc_node.status(trade_id) == "funded"
        assert esc["deposited_sat"] == 50_000 + i and esc["funded_tx"] == txid
    with btc_node.node.sessions() as s:
        n = s.scalar(select(func.count()).select_from(ChainEvent).where(
            ChainEvent.name == "Deposit"))
    assert n == 12


def test_confirmations_are_counted(bitcoind: BitcoinRegtest, alice: DevWallet, pg_url: str,
                                   tmp_path: Path) -> None:
    bn = make_btc_node(bitcoind, alice, pg_url, tmp_path, confirmations=3)
    try:
        trade_id, addr = bn.open_trade(70_000)
        alice.send(addr, 70_000)
        bn.sync()  # in the mempool only: never credited at 0 confirmations
        assert bn.status(trade_id) == "awaiting_funding"
        bn.sync(mine=1)
        assert bn.status(trade_id) == "awaiting_funding"  # 1 of 3
        bn.sync(mine=1)
        assert bn.status(trade_id) == "awaiting_funding"  # 2 of 3
        bn.sync(mine=1)
        assert bn.status(trade_id) == "funded"
    finally:
        bn.node.stop()


def test_under_over_and_repeated_payments_are_shown(btc_node: BtcNode) -> None:
    under, addr_u = btc_node.open_trade(100_000)
    over, addr_o = btc_node.open_trade(100_000)
    pay_many(btc_node.seller.wallet, [(addr_u, 60_000), (addr_o, 130_000)])
    btc_node.sync(mine=1)
    assert btc_node.status(under) == "funding_mismatch"
    e = btc_node.escrow(under)
    assert e["deposited_sat"] == 60_000 and e["status"] == "underfunded"
    assert btc_node.status(over) == "funded"
    assert btc_node.escrow(over)["extra_sat"] == 30_000
    # a second payment completes the under-paid escrow; a repeat to the other is kept
    pay_many(btc_node.seller.wallet, [(addr_u, 40_000), (addr_o, 100_000)])
    btc_node.sync(mine=1)
    assert btc_node.status(under) == "funded"
    e = btc_node.escrow(under)
    assert e["deposit_count"] == 2 and e["deposited_sat"] == 100_000 and e["extra_sat"] == 0
    e = btc_node.escrow(over)
    assert e["deposit_count"] == 2 and e["extra_sat"] == 130_000
    assert e["unspent_sat"] == 230_000


def test_reorg_removing_the_funding_unfunds(btc_node: BtcNode) -> None:
    trade_id, addr = btc_node.open_trade(80_000)
    txid = btc_node.seller.wallet.send(addr, 80_000)
    btc_node.sync(mine=1)
    assert btc_node.status(trade_id) == "funded"
    # the funding block is replaced by a branch without the transaction: the
    # transaction goes back to the mempool; drop it by double-spending its input
    btc_node.regtest.rpc("invalidateblock", btc_node.regtest.tip())
    assert txid in btc_node.regtest.rpc("getrawmempool")
    mempool_tx = btc_node.regtest.rpc("getrawtransaction", txid, 1)
    # conflicting spend of the same coin, to the seller itself, with a higher fee
    wallet = btc_node.seller.wallet
    prev = mempool_tx["vin"][0]
    conflict = wallet.build([(wallet.address, 10_000)], feerate=20,
                            inputs=[u for u in wallet.utxos(spendable_only=False)
                                   if (u.txid, u.vout) == (prev["txid"], prev["vout"])])
    wallet.broadcast(conflict)
    btc_node.sync(mine=2)
    assert txid not in btc_node.regtest.rpc("getrawmempool")
    assert btc_node.status(trade_id) == "awaiting_funding"
    assert btc_node.escrow(trade_id)["deposited_sat"] == 0


def test_reorg_while_the_node_was_down(bitcoind: BitcoinRegtest, alice: DevWallet, pg_url: str,
                                       tmp_path: Path) -> None:
    bn = make_btc_node(bitcoind, alice, pg_url, tmp_path)
    trade_id, addr = bn.open_trade(90_000)
    alice.send(addr, 90_000)
    bn.sync(mine=1)
    funded_block = bitcoind.tip()
    assert bn.status(trade_id) == "funded"
    bn.node.stop()
    # while down: the funding block is invalidated and a longer branch without
    # the funding (its coin double-spent) wins
    bitcoind.rpc("invalidateblock", funded_block)
    tx = bitcoind.rpc("getrawmempool")
    for txid in tx:
        prev = bitcoind.rpc("getrawtransaction", txid, 1)["vin"][0]
        utxos = [u for u in alice.utxos(spendable_only=False)
                 if (u.txid, u.vout) == (prev["txid"], prev["vout"])]
        if utxos:
            alice.broadcast(alice.build([(alice.address, 10_000)], feerate=20, inputs=utxos))
    bitcoind.mine(3)
    bn2 = make_btc_node(bitcoind, alice, pg_url, tmp_path / "again")
    try:
        r = bn2.watcher.step()
        assert r.reorg_depth >= 1
        bn2.watcher.sync()
        assert bn2.status(trade_id) == "awaiting_funding"
    finally:
        bn2.node.stop()


def test_reorg_deeper_than_finality_halts(btc_node: BtcNode) -> None:
    btc_node.sync(mine=3)
    depth = 25  # finality_depth is 20 in these tests
    btc_node.sync(mine=depth)
    btc_node.regtest.reorg(depth + 2)
    with pytest.raises(ReorgTooDeepError):
        btc_node.watcher.sync()
