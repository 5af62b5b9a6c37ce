"""The Solana watcher on a real local chain (LiteSVM behind JSON-RPC, slots only
on demand) and real PostgreSQL: a deposit into an escrow token account is
credited only once it is at the configured commitment (finalized), a
transaction that never lands (dropped: its blockhash expired) is never
credited, a wrong amount shows as a funding mismatch, and the fold of the
watcher's observations is recomputed, not accumulated.

Also holds the ``SolNode`` harness the other Solana tests import: a node built
by ``build_node`` exactly as in production (RPC URL + keys), Solana only."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair
from solders.transaction import Transaction
from sqlalchemy import select

from node.chains.base import ChainAdapter, TxState
from node.chains.sol.adapter import SolAdapter
from node.config import load_settings
from node.db.models import CryptoCurrency, P2PEscrow, P2POrder, SolEscrow
from node.db.session import transaction
from node.runtime import Node, build_node
from node.sol_runtime import sol_chain
from node.sol_trades import SolTradeChain
from node.trades import AdInput, create_ad, create_user, match_ad
from tests.functional.solana_fixtures import solana_manual_chain  # noqa: F401 (fixture)
from wallets.solana.signer import SoftwareSigner, decode_transaction, sign_partially


@dataclass
class SolNode:
    node: Node
    chain: SolanaLocal
    seller: Keypair
    buyer: Keypair
    agent: Keypair
    fee_payer: Keypair
    tokens: dict[str, str]

    @property
    def sol(self) -> SolTradeChain:
        return sol_chain(self.node)

    def step(self) -> None:
        for w in self.node.watchers:
            w.step()

    def finalize(self) -> None:
        self.chain.finalize()
        self.step()

    def send(self, tx: Transaction) -> str:
        return str(self.chain.rpc("sendTransaction", base64.b64encode(bytes(tx)).decode(),
                                  {"encoding": "base64", "preflightCommitment": "processed"}))

    def open_trade(self, amount: int = LAMPORTS_PER_SOL) -> int:
        """An ad and a match for ``amount`` lamports of SOL; returns the trade id."""
        with transaction(self.node.sessions) as s:
            cur = s.scalar(select(CryptoCurrency).where(CryptoCurrency.chain == "sol",
                                                        CryptoCurrency.symbol == "SOL"))
            assert cur is not None
            seller = s.scalar(select(_user_model()).where(_user_model().username == "seller"))
            buyer = s.scalar(select(_user_model()).where(_user_model().username == "buyer"))
            assert seller is not None and buyer is not None
            ad = create_ad(s, seller=seller, data=AdInput(
                crypto_currency_id=cur.id, amount=amount, min_amount=amount, max_amount=amount,
                price_per_unit=Decimal("150"), fiat_currency="EUR", payment_methods=["SEPA"],
                seller_address=str(self.seller.pubkey())))
            now = datetime.now(UTC)
            trade = match_ad(s, ad_id=ad.id, buyer=buyer, amount=amount,
                             buyer_address=str(self.buyer.pubkey()), now=now)
            self.sol.open_escrow(s, trade=trade, currency=cur, arbitrator_address=None, now=now)
            return trade.id

    def funding_tx(self, trade_id: int) -> Transaction:
        """The funding transaction as the API gives it, signed by the seller."""
        with transaction(self.node.sessions) as s:
            trade = s.get(P2POrder, trade_id)
            assert trade is not None and trade.escrow is not None
            req = self.sol.funding_instructions(trade.escrow, trade.currency)
        return sign_partially(decode_transaction(req["transaction"]), SoftwareSigner(self.seller))

    def status(self, trade_id: int) -> str:
        with transaction(self.node.sessions) as s:
            trade = s.get(P2POrder, trade_id)
            assert trade is not None
            return trade.status

    def escrow(self, trade_id: int) -> tuple[P2PEscrow, SolEscrow]:
        with transaction(self.node.sessions) as s:
            e = s.scalar(select(P2PEscrow).where(P2PEscrow.p2p_order_id == trade_id))
            assert e is not None
            sol = s.scalar(select(SolEscrow).where(SolEscrow.p2p_escrow_id == e.id))
            assert sol is not None
            s.expunge_all()
            return e, sol


def _user_model() -> Any:
    from node.db.models import User

    return User


def make_sol_node(chain: SolanaLocal, pg_url: str, tmp_path: Path, **sol: Any) -> SolNode:
    agent, fee_payer, seller, buyer = Keypair(), Keypair(), Keypair(), Keypair()
    for kp in (fee_payer, seller, buyer):
        chain.airdrop(str(kp.pubkey()), 20 * LAMPORTS_PER_SOL)
    settings = load_settings(
        mode="production", data_dir=tmp_path, database_url=pg_url,
        auth={"jwt_secret": "test-jwt-secret-" + "x" * 32},
        disputes={"allow_unsigned_rulings": True},  # API-token arbitrator
        evm={"enabled": False},
        sol={"enabled": True, "rpc_url": chain.url, "agent_key": str(agent),
             "fee_payer_key": str(fee_payer), "commitment": "finalized", **sol},
    )
    node = build_node(settings)
    tokens = {}
    with transaction(node.sessions) as s:
        for name, role in (("seller", "trader"), ("buyer", "trader"),
                           ("outsider", "trader"), ("arbitrator", "arbitrator")):
            _user, tokens[name] = create_user(s, username=name, role=role)
    return SolNode(node=node, chain=chain, seller=seller, buyer=buyer, agent=agent,
                   fee_payer=fee_payer, tokens=tokens)


@pytest.fixture
def manual(solana_manual_chain: SolanaLocal, pg_url: str, tmp_path: Path) -> Iterator[SolNode]:  # noqa: F811
    # away from genesis, where every commitment is slot 0
    solana_manual_chain.warp_slots(solana_manual_chain.finality_slots + 1)
    sn = make_sol_node(solana_manual_chain, pg_url, tmp_path)
    try:
        yield sn
    finally:
        sn.node.stop()


def test_deposit_credited_only_once_finalized(manual: SolNode) -> None:
    trade = manual.open_trade()
    manual.step()
    assert manual.status(trade) == "awaiting_funding"
    manual.send(manual.funding_tx(trade))
    # processed (and then confirmed), not finalized: not credited
    manual.step()
    assert manual.status(trade) == "awaiting_funding"
    manual.chain.warp_slots(1)
    manual.step()
    assert manual.chain.slot("confirmed") > manual.chain.slot("finalized")
    assert manual.status(trade) == "awaiting_funding"
    manual.finalize()
    assert manual.status(trade) == "funded"
    escrow, sol = manual.escrow(trade)
    assert escrow.funded_amount == LAMPORTS_PER_SOL and escrow.funded_tx
    assert sol.observed_amount == LAMPORTS_PER_SOL
    # a step with nothing new changes nothing (recomputed, never double-counted)
    manual.finalize()
    assert manual.escrow(trade)[0].funded_amount == LAMPORTS_PER_SOL


def test_dropped_funding_is_never_credited(manual: SolNode) -> None:
    trade = manual.open_trade()
    tx = manual.funding_tx(trade)
    # the seller waits too long: the blockhash expires before the transaction lands
    manual.chain.warp_slots(200)
    with pytest.raises(Exception, match="Blockhash not found|BlockhashNotFound"):
        manual.send(tx)
    manual.finalize()
    assert manual.status(trade) == "awaiting_funding"
    sig = str(tx.signatures[0])
    adapter = SolAdapter(manual.sol.client, cluster="localnet", commitment="finalized")
    assert isinstance(adapter, ChainAdapter)
    assert adapter.tx_status(sig).state is TxState.UNKNOWN
    # a fresh funding transaction from the API then lands and is credited
    fresh = manual.funding_tx(trade)
    txid = adapter.broadcast(bytes(fresh))
    assert adapter.tx_status(txid).state is TxState.PENDING  # processed, not finalized
    assert adapter.broadcast(bytes(fresh)) == txid  # idempotent
    manual.finalize()
    assert adapter.tx_status(txid).state is TxState.CONFIRMED
    assert manual.status(trade) == "funded"


def test_wrong_amount_is_a_mismatch_not_a_funding(manual: SolNode) -> None:
    """The seller funds the escrow accounts with less than the trade's amount
    (their own transaction, not the API's): shown as a mismatch, never funded."""
    from wallets.solana.escrow import RentExemption, build_funding_transaction

    trade = manual.open_trade(2 * LAMPORTS_PER_SOL)
    escrow, sol = manual.escrow(trade)
    with transaction(manual.node.sessions) as s:
        e = s.get(P2PEscrow, escrow.id)
        s_ = s.get(SolEscrow, sol.id)
        assert e is not None and s_ is not None
        accounts = manual.sol.accounts_of(s_, e)
    blockhash, _ = manual.sol.client.latest_blockhash(Commitment("processed"))
    funding = build_funding_transaction(accounts, LAMPORTS_PER_SOL, recent_blockhash=blockhash,
                                        rent=RentExemption.standard())
    manual.send(sign_partially(funding.transaction, SoftwareSigner(manual.seller)))
    manual.finalize()
    assert manual.status(trade) == "funding_mismatch"
    escrow, _ = manual.escrow(trade)
    assert escrow.status == "funding_under" and escrow.funded_amount == LAMPORTS_PER_SOL



def test_configured_commitment_confirmed_credits_earlier(
    solana_manual_chain: SolanaLocal, pg_url: str, tmp_path: Path  # noqa: F811
) -> None:
    solana_manual_chain.warp_slots(solana_manual_chain.finality_slots + 1)
    sn = make_sol_node(solana_manual_chain, pg_url, tmp_path, commitment="confirmed")
    try:
        trade = sn.open_trade()
        sn.send(sn.funding_tx(trade))
        sn.step()
        assert sn.status(trade) == "awaiting_funding"  # processed only
        sn.chain.warp_slots(1)
        sn.step()
        assert sn.chain.slot("finalized") < sn.chain.slot("confirmed")
        assert sn.status(trade) == "funded"  # confirmed, not yet finalized
    finally:
        sn.node.stop()


def test_a_late_funding_of_an_expired_trade_is_still_seen(manual: SolNode) -> None:
    trade = manual.open_trade()
    with transaction(manual.node.sessions) as s:
        order = s.get(P2POrder, trade)
        assert order is not None
        order.status = "expired"
    manual.step()
    assert manual.status(trade) == "expired"
    manual.send(manual.funding_tx(trade))
    manual.finalize()
    assert manual.status(trade) == "funded"
