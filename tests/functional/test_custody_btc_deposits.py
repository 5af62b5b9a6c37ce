"""Bitcoin deposits on the local regtest node: a payment to a user's BIP-84
deposit address is credited only after the configured confirmations, a reorg
that removes its block reverses it (what the user already put on hold becomes
reorg debt, repaid by the re-credit), and a deposit made while the node was
down is credited when it catches up."""

from __future__ import annotations

from pathlib import Path

from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet
from sqlalchemy import select

from node.custody.addresses import allocate
from node.custody.ledger import NODE_DEPOSIT, balance, check_balances, hold, user_balances
from node.custody.reconcile import reconcile
from node.db.models_custody import CustodyDeposit
from node.db.session import transaction
from tests.api.custody_fixtures import *  # noqa: F403
from tests.api.custody_fixtures import CustodyNode, make_btc_custody_node


def _address(cn: CustodyNode, user: str) -> str:
    with transaction(cn.node.sessions) as s:
        return allocate(
            s, cn.svc.keys, user_id=cn.users[user], chain="btc", btc_network=cn.svc.btc_network
        ).address


def _bal(cn: CustodyNode, user: str) -> dict[str, int]:
    with cn.node.sessions() as s:
        return user_balances(s, cn.users[user]).get("BTC", {"available": 0, "held": 0, "debt": 0})


def test_credit_after_confirmations_reversal_on_reorg(
    bitcoind: BitcoinRegtest, alice: DevWallet, pg_url: str, tmp_path: Path, seed_file: Path
) -> None:
    cn = make_btc_custody_node(bitcoind, pg_url, tmp_path, seed_file, confirmations=2)
    try:
        cn.add_users("carol", "dave")
        addr = _address(cn, "carol")
        assert addr.startswith("bcrt1q") and addr == _address(cn, "carol")  # allocated once
        assert _address(cn, "dave") != addr
        cn.sync()
        txid = alice.send(addr, 50_000)
        cn.sync()
        assert _bal(cn, "carol")["available"] == 0  # in the mempool
        block = bitcoind.mine(1)[0]
        cn.sync()
        assert _bal(cn, "carol")["available"] == 0  # 1 of 2 confirmations
        bitcoind.mine(1)
        cn.sync()
        assert _bal(cn, "carol") == {"available": 50_000, "held": 0, "debt": 0}
        assert _bal(cn, "dave")["available"] == 0
        with transaction(cn.node.sessions) as s:
            hold(s, user_id=cn.users["carol"], asset="BTC", amount=30_000, ref="order:1")

        # the deposit's block leaves the chain: the tx is back in the mempool
        bitcoind.rpc("invalidateblock", block)
        cn.sync()
        assert _bal(cn, "carol") == {"available": 0, "held": 30_000, "debt": -30_000}
        with cn.node.sessions() as s:
            dep = s.scalar(select(CustodyDeposit).where(CustodyDeposit.txid == txid))
            assert dep is not None and dep.status == "reversed"
            assert balance(s, NODE_DEPOSIT, "BTC") == 0
            assert check_balances(s) == []

        # mined again on the new branch: credited again, repaying the debt first
        bitcoind.mine(2)
        cn.sync()
        assert _bal(cn, "carol") == {"available": 20_000, "held": 30_000, "debt": 0}
        with cn.node.sessions() as s:
            dep = s.scalar(select(CustodyDeposit).where(CustodyDeposit.txid == txid))
            assert dep is not None and (dep.status, dep.credits) == ("credited", 2)
            assert balance(s, NODE_DEPOSIT, "BTC") == -50_000
            assert check_balances(s) == []
            # the ledger's holdings equal the confirmed coins on the deposit addresses
            [line] = reconcile(cn.svc, s)
            assert (line.asset, line.ledger, line.on_chain, line.ok) == (
                "BTC",
                50_000,
                50_000,
                True,
            )
        alice.send(addr, 1_000)
        bitcoind.mine(1)  # mined, 1 of 2 confirmations: on neither side yet
        cn.sync()
        with cn.node.sessions() as s:
            assert reconcile(cn.svc, s)[0].ok
    finally:
        cn.node.stop()


def test_deposit_while_node_down_is_credited_on_catch_up(
    bitcoind: BitcoinRegtest, alice: DevWallet, pg_url: str, tmp_path: Path, seed_file: Path
) -> None:
    cn = make_btc_custody_node(bitcoind, pg_url, tmp_path, seed_file, confirmations=1)
    cn.add_users("erin")
    addr = _address(cn, "erin")
    cn.sync()
    cn.node.stop()

    alice.send(addr, 70_000)
    bitcoind.mine(1)  # the dev wallet spends confirmed coins only
    alice.send(addr, 5_000)
    bitcoind.mine(2)

    again = make_btc_custody_node(bitcoind, pg_url, tmp_path, seed_file, confirmations=1)
    again.users = cn.users
    try:
        again.sync()
        assert _bal(again, "erin")["available"] == 75_000
        again.sync()  # idempotent
        assert _bal(again, "erin")["available"] == 75_000
    finally:
        again.node.stop()
