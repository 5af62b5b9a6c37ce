"""Bitcoin custody moves on the local regtest node: credited deposit outputs
are swept into the hot wallet, the hot wallet's excess above its ceiling goes
to the cold address, a withdrawal requested through the API (TOTP,
allow-list) is paid from the hot wallet and settled after the confirmations;
the ledger reconciles with the UTXO set at every step (also while a sweep is
mined but not yet confirmed)."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet

from node.accounts.totp import enable_totp, setup_totp
from node.custody.ledger import NODE_COLD, NODE_HOT, balance, check_balances
from node.custody.reconcile import reconcile
from node.db.session import transaction
from tests.api.custody_fixtures import *  # noqa: F403
from tests.api.custody_fixtures import CustodyNode, make_btc_custody_node

P = "/api/p2p-crypto"


def _reconciled(cn: CustodyNode) -> list[dict]:  # type: ignore[type-arg]
    with cn.node.sessions() as s:
        lines = [line.to_dict() for line in reconcile(cn.svc, s)]
        assert check_balances(s) == []
    assert all(line["ok"] for line in lines), lines
    return lines


def test_sweeps_cold_and_withdrawal(
    bitcoind: BitcoinRegtest,
    alice: DevWallet,
    bob: DevWallet,
    pg_url: str,
    tmp_path: Path,
    seed_file: Path,
) -> None:
    cn = make_btc_custody_node(
        bitcoind,
        pg_url,
        tmp_path,
        seed_file,
        confirmations=2,
        new_address_delay_s=0,
        hot_ceiling={"BTC": 100_000},
        cold_address={"BTC": bob.address},
    )
    client = TestClient(cn.node.app(), raise_server_exceptions=False)
    try:
        cn.add_users("carol")
        auth = {"Authorization": f"Bearer {cn.tokens['carol']}"}
        r = client.post(f"{P}/deposit-addresses", headers=auth, json={"chain": "btc"})
        assert r.status_code == 201, r.text
        addr = r.json()["address"]
        cn.sync()
        alice.send(addr, 300_000)
        bitcoind.mine(1)
        alice.send(addr, 200_000)
        bitcoind.mine(2)
        cn.sync()
        body = client.get(f"{P}/balances", headers=auth).json()
        assert body == [{"asset": "BTC", "available": "500000", "held": "0", "debt": "0"}]
        _reconciled(cn)

        # deposit outputs -> hot wallet (one transaction spending both)
        assert [x.split(":")[0] for x in cn.svc.run_sweeps()] == ["to_hot"]
        _reconciled(cn)  # in the mempool
        bitcoind.mine(1)
        cn.sync()
        _reconciled(cn)  # mined, 1 of 2 confirmations: its inputs are added back
        bitcoind.mine(1)
        cn.sync()
        done = cn.svc.run_sweeps()  # settles it, then sends the excess to cold
        assert [x.split(":")[0] for x in done] == ["to_hot", "to_cold"]
        with cn.node.sessions() as s:
            hot_after_sweep = -balance(s, NODE_HOT, "BTC")
        assert 500_000 - 2_000 < hot_after_sweep < 500_000  # minus the sweep's fee
        bitcoind.mine(2)
        cn.sync()
        assert [x.split(":")[-1] for x in cn.svc.run_sweeps()] == ["confirmed"]
        with cn.node.sessions() as s:
            assert -balance(s, NODE_COLD, "BTC") == bob.balance() == hot_after_sweep - 100_000
            assert 100_000 - 2_000 < -balance(s, NODE_HOT, "BTC") < 100_000
        lines = _reconciled(cn)
        assert {line["scope"] for line in lines} == {"hot+deposits", "cold"}

        # a withdrawal under the policy, paid from the hot wallet
        with transaction(cn.node.sessions) as s:
            setup = setup_totp(s, user_id=cn.users["carol"], account="carol", issuer="escrowd")
            totp = pyotp.TOTP(setup.secret)
            enable_totp(s, user_id=cn.users["carol"], code=totp.now(), count=1)
        payee = DevWallet(bitcoind, "payee")
        r = client.post(
            f"{P}/withdrawal-addresses",
            headers=auth,
            json={"chain": "btc", "address": payee.address},
        )
        assert r.status_code == 201, r.text
        bad = client.post(
            f"{P}/withdrawal-addresses",
            headers=auth,
            json={"chain": "btc", "address": "bc1qnotanaddress"},
        )
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_address"
        r = client.post(
            f"{P}/withdrawals",
            headers=auth,
            json={
                "asset": "BTC",
                "address": payee.address,
                "amount": "50000",
                "totp_code": totp.at(time.time() + 30),
                "request_key": "btc-1",
            },
        )
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        assert cn.svc.run_withdrawals() == {wid: "broadcast"}
        bitcoind.mine(2)
        cn.sync()
        assert cn.svc.run_withdrawals() == {wid: "confirmed"}
        w = client.get(f"{P}/withdrawals/{wid}", headers=auth).json()
        assert w["status"] == "confirmed" and int(w["network_fee"]) > 0
        assert payee.balance() == 50_000
        body = client.get(f"{P}/balances", headers=auth).json()
        assert body == [{"asset": "BTC", "available": "450000", "held": "0", "debt": "0"}]
        _reconciled(cn)
    finally:
        client.close()
        cn.node.stop()
