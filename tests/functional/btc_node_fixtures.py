"""A node with Bitcoin enabled against the local regtest node and a real
PostgreSQL database (built by ``build_node`` exactly as in production: RPC
URL, credentials, agent seed), plus the traders: independent software
signers (their own seeds) for keys, DevWallets for coins and payout
addresses. The watcher is stepped by the tests (``sync()``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from localchain.bitcoin import BitcoinRegtest
from localchain.bitcoin.devwallet import DevWallet
from sqlalchemy import select

from node.btc_trades import BtcTradeChain
from node.config import load_settings
from node.db.models import BtcEscrow, P2PEscrow, P2POrder, User
from node.db.session import transaction
from node.runtime import Node, build_node
from node.trades import AdInput, create_user, match_ad
from tests.functional.bitcoin_fixtures import *  # noqa: F403
from tests.functional.bitcoin_fixtures import __all__ as _bitcoin_fixtures
from wallets.bitcoin import REGTEST, SoftwareSigner

__all__ = ["btc_api", "btc_node", "stingy_btc_api", *_bitcoin_fixtures]

AGENT_SEED = hashlib.sha256(b"test agent").hexdigest()
CSV_BLOCKS = 10


def signer(name: str) -> SoftwareSigner:
    return SoftwareSigner.from_seed(hashlib.sha256(name.encode()).digest(), network=REGTEST)


@dataclass
class Trader:
    name: str
    signer: SoftwareSigner
    wallet: DevWallet  # payout address (and coins, for the seller)

    def key(self, index: int, branch: int = 0) -> str:
        return self.signer.key_expression("m/84h/1h/0h", (branch, index))

    def sign(self, psbt: str) -> str:
        return self.signer.sign_psbt(psbt)


@dataclass
class BtcNode:
    node: Node
    regtest: BitcoinRegtest
    seller: Trader
    buyer: Trader
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    @property
    def chain(self) -> BtcTradeChain:
        chain = self.node.chains.get("btc")
        assert isinstance(chain, BtcTradeChain)
        return chain

    @property
    def watcher(self) -> Any:
        return self.node.watchers[0]

    def sync(self, mine: int = 0) -> None:
        if mine:
            self.regtest.mine(mine)
        self.watcher.sync()

    def open_trade(self, amount: int = 100_000) -> tuple[int, str]:
        """An ad and a trade through the node's services (not the API):
        returns (trade id, escrow address)."""
        from datetime import UTC, datetime

        from node.trades import create_ad, get_currency

        self.counter += 1
        i = self.counter
        with transaction(self.node.sessions) as s:
            seller = s.get(User, self.users["seller"].id)
            buyer = s.get(User, self.users["buyer"].id)
            assert seller is not None and buyer is not None
            cur = get_currency(s, self.currency_id())
            ad = create_ad(s, seller=seller, data=AdInput(
                crypto_currency_id=cur.id, amount=amount, min_amount=amount, max_amount=amount,
                price_per_unit=__import__("decimal").Decimal("90000"), fiat_currency="EUR",
                payment_methods=["SEPA"], seller_address=self.seller.wallet.address))
            self.chain.store_party_keys(s, order=ad, keys={
                "seller_pubkey": self.seller.key(i), "seller_refund_pubkey": self.seller.key(i, 1)})
            trade = match_ad(s, ad_id=ad.id, buyer=buyer, amount=amount,
                             buyer_address=self.buyer.wallet.address, now=datetime.now(UTC))
            self.chain.store_party_keys(s, order=trade, keys={"buyer_pubkey": self.buyer.key(i)})
            escrow = self.chain.open_escrow(s, trade=trade, currency=cur,
                                            arbitrator_address=None, now=datetime.now(UTC))
            return trade.id, escrow.escrow_key

    def currency_id(self) -> int:
        from node.db.models import CryptoCurrency

        with self.node.sessions() as s:
            cid = s.scalar(select(CryptoCurrency.id).where(CryptoCurrency.symbol == "BTC"))
            assert cid is not None
            return int(cid)

    def status(self, trade_id: int) -> str:
        with self.node.sessions() as s:
            order = s.get(P2POrder, trade_id)
            assert order is not None
            return order.status

    def escrow(self, trade_id: int) -> dict[str, Any]:
        with self.node.sessions() as s:
            row = s.execute(
                select(BtcEscrow, P2PEscrow)
                .join(P2PEscrow, BtcEscrow.p2p_escrow_id == P2PEscrow.id)
                .where(P2PEscrow.p2p_order_id == trade_id)).one()
            btc, esc = row
            return {"address": btc.address, "deposited_sat": btc.deposited_sat,
                    "extra_sat": btc.extra_sat, "unspent_sat": btc.unspent_sat,
                    "deposit_count": btc.deposit_count, "deposits": list(btc.deposits),
                    "status": esc.status, "funded_tx": esc.funded_tx,
                    "payout_tx": esc.payout_tx, "payout_txid": btc.payout_txid,
                    "payout_kind": btc.payout_kind}


def btc_settings(regtest: BitcoinRegtest, database_url: str, data_dir: Path,
                 **btc: Any) -> Any:
    user, password = regtest.auth()
    return load_settings(
        mode="production", data_dir=data_dir, database_url=database_url,
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        disputes={"allow_unsigned_rulings": True},  # API-token arbitrator
        evm={"enabled": False},
        btc={"enabled": True, "network": "regtest", "rpc_url": regtest.url, "rpc_user": user,
             "rpc_password": password, "agent_seed": AGENT_SEED, "confirmations": 1,
             "csv_blocks": CSV_BLOCKS, "finality_depth": 20, **btc},
    )


def make_btc_node(regtest: BitcoinRegtest, alice: DevWallet, database_url: str,
                  data_dir: Path, **btc: Any) -> BtcNode:
    node = build_node(btc_settings(regtest, database_url, data_dir, **btc))
    bn = BtcNode(node=node, regtest=regtest,
                 seller=Trader("seller", signer("seller seed"), alice),
                 buyer=Trader("buyer", signer("buyer seed"), DevWallet(regtest, "buyer payout")))
    with transaction(node.sessions) as s:
        for name, role in (("seller", "trader"), ("buyer", "trader"), ("outsider", "trader"),
                           ("arbitrator", "arbitrator")):
            existing = s.scalar(select(User).where(User.username == name))
            if existing is not None:  # a second node on the same database
                u = existing
            else:
                u, bn.tokens[name] = create_user(s, username=name, role=role)
            s.flush()
            s.expunge(u)
            bn.users[name] = u
    return bn


@pytest.fixture
def btc_node(bitcoind: BitcoinRegtest, alice: DevWallet, pg_url: str,
             tmp_path: Path) -> Iterator[BtcNode]:
    bn = make_btc_node(bitcoind, alice, pg_url, tmp_path)
    try:
        yield bn
    finally:
        bn.node.stop()


@dataclass
class BtcApi:
    """The HTTP API of a Bitcoin node (FastAPI's TestClient, in process)."""

    bn: BtcNode
    client: Any

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bn.tokens[who]}"}

    def get(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.auth(who) if who else {}, **kw)

    def post(self, path: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers=self.auth(who) if who else {}, **kw)

    def btc_id(self) -> int:
        cur = self.get("/api/p2p-crypto/currencies").json()
        return int(next(c["id"] for c in cur if c["symbol"] == "BTC"))

    def open_trade(self, amount: int = 100_000, *, seller_key: str | None = None,
                   seller_refund_key: str | None = None,
                   buyer_key: str | None = None) -> dict[str, Any]:
        """Ad + match through the API with the traders' own keys; returns the
        match response (order + funding)."""
        self.bn.counter += 1
        i = self.bn.counter
        r = self.post("/api/p2p-crypto/orders", "seller", json={
            "crypto_currency_id": self.btc_id(), "amount": str(amount),
            "price_per_unit": "90000", "fiat_currency": "EUR", "payment_methods": ["SEPA"],
            "seller_address": self.bn.seller.wallet.address,
            "seller_pubkey": seller_key or self.bn.seller.key(i),
            "seller_refund_pubkey": seller_refund_key or self.bn.seller.key(i, 1),
        })
        assert r.status_code == 201, r.text
        m = self.post(f"/api/p2p-crypto/orders/{r.json()['id']}/match", "buyer", json={
            "amount": str(amount), "buyer_address": self.bn.buyer.wallet.address,
            "buyer_pubkey": buyer_key or self.bn.buyer.key(i)})
        assert m.status_code == 201, m.text
        return dict(m.json())

    def fund(self, match: dict[str, Any], amount: int | None = None) -> str:
        f = match["funding"]
        txid = self.bn.seller.wallet.send(f["address"], amount or int(f["amount"]))
        self.bn.sync(mine=1)
        return txid


@pytest.fixture
def btc_api(btc_node: BtcNode) -> Iterator[BtcApi]:
    from fastapi.testclient import TestClient

    client = TestClient(btc_node.node.app(), raise_server_exceptions=False)
    try:
        yield BtcApi(btc_node, client)
    finally:
        client.close()


# -- a regtest node whose miner leaves cheap transactions out ------------------

# bitcoind's -blockmintxfee (BTC/kvB): packages under 3 sat/vB are not mined,
# so a payout or funding at 1 or 2 sat/vB stays in the mempool until bumped
STINGY_BLOCK_MIN_FEE = "0.00003"


@pytest.fixture
def stingy_btc_api(tmp_path_factory: pytest.TempPathFactory, pg_url: str,
                   tmp_path: Path) -> Iterator[BtcApi]:
    """``btc_api`` on a regtest node that mines only packages paying at least
    3 sat/vB; the node bumps payouts stuck for 2 blocks."""
    from fastapi.testclient import TestClient

    from tests.functional.bitcoin_fixtures import assert_clean_log, start_bitcoind

    regtest = start_bitcoind(tmp_path_factory,
                             extra_args=("--blockmintxfee", STINGY_BLOCK_MIN_FEE))
    try:
        alice = DevWallet(regtest, "alice")
        regtest.mine(101, alice.address)
        bn = make_btc_node(regtest, alice, pg_url, tmp_path, bump_after_blocks=2)
        client = TestClient(bn.node.app(), raise_server_exceptions=False)
        try:
            yield BtcApi(bn, client)
        finally:
            client.close()
            bn.node.stop()
    finally:
        regtest.stop()
    assert_clean_log(regtest)
