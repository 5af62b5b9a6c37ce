"""Solana payouts on a real local chain and PostgreSQL, through the node's
``SolTradeChain``: the runtime rejects a transfer out of escrow with one
multisig signature; a partially signed payout whose blockhash expired is
refused with ``blockhash_expired``, rebuilt from the same intent and completed;
and the I3 policy: the agent co-signs the seller's refund after the deadline
when the trade is unpaid and undisputed, and refuses otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localchain.solana import LAMPORTS_PER_SOL, SolanaLocal
from solana.rpc.commitment import Commitment
from solders.keypair import Keypair
from solders.message import Message
from solders.signature import Signature
from solders.transaction import Transaction
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams
from sqlalchemy import select, update

from node.db.models import P2PDispute, P2PEscrow, P2POrder, User
from node.db.session import transaction
from node.domain.escrow import Action
from node.errors import EscrowdError
from node.sol_trades import fact_message, sign_message_b58
from tests.functional.solana_fixtures import solana_manual_chain  # noqa: F401 (fixture)
from tests.functional.test_sol_watcher import SolNode, make_sol_node
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    sign_partially,
)


@pytest.fixture
def sn(solana_manual_chain: SolanaLocal, pg_url: str, tmp_path: Path) -> Iterator[SolNode]:  # noqa: F811
    solana_manual_chain.warp_slots(solana_manual_chain.finality_slots + 1)
    node = make_sol_node(solana_manual_chain, pg_url, tmp_path)
    try:
        yield node
    finally:
        node.node.stop()


def funded(sn: SolNode) -> int:
    trade = sn.open_trade()
    sn.send(sn.funding_tx(trade))
    sn.finalize()
    assert sn.status(trade) == "funded"
    return trade


def act(sn: SolNode, trade: int, action: Action, who: str, key: Keypair, *,
        sign: bool = True) -> Any:
    """The two API steps of a party action, on the node's trade chain."""
    with transaction(sn.node.sessions) as s:
        order = s.get(P2POrder, trade)
        assert order is not None and order.escrow is not None
        req = sn.sol.sign_request(order.escrow, action)
    if not sign:
        return req
    if req.payload["kind"] == "message":
        signature = sign_message_b58(SoftwareSigner(key), req.payload["message"])
    else:
        tx = sign_partially(decode_transaction(req.payload["transaction"]), SoftwareSigner(key))
        signature = str(tx.signatures[tx.message.account_keys.index(key.pubkey())])
    return submit(sn, trade, action, who, req.expiry, signature)


def submit(sn: SolNode, trade: int, action: Action, who: str, expiry: int, signature: str) -> Any:
    with transaction(sn.node.sessions) as s:
        order = s.get(P2POrder, trade)
        user = s.scalar(select(User).where(User.username == who))
        assert order is not None and order.escrow is not None and user is not None
        return sn.sol.submit_signed(s, escrow=order.escrow, action=action, buyer_bps=0,
                                    expiry=expiry, signatures=[signature], requested_by=user)


def wsol_balance(sn: SolNode, owner: Keypair) -> int:
    from spl.token.constants import WRAPPED_SOL_MINT
    from spl.token.instructions import get_associated_token_address

    ata = get_associated_token_address(owner.pubkey(), WRAPPED_SOL_MINT)
    acct = sn.sol.client.account(ata, Commitment("finalized"))
    return 0 if acct is None else int.from_bytes(acct.data[64:72], "little")


def test_one_signature_cannot_move_escrowed_funds(sn: SolNode) -> None:
    trade = funded(sn)
    escrow, sol = sn.escrow(trade)
    from solders.pubkey import Pubkey
    from spl.token.instructions import (
        create_idempotent_associated_token_account,
        get_associated_token_address,
    )

    mint = Pubkey.from_string(sol.mint)
    dest = get_associated_token_address(sn.agent.pubkey(), mint)
    ixs = [
        create_idempotent_associated_token_account(sn.agent.pubkey(), sn.agent.pubkey(), mint),
        transfer_checked(TransferCheckedParams(
            program_id=Pubkey.from_string(sol.token_program),
            source=Pubkey.from_string(sol.escrow_token_account), mint=mint, dest=dest,
            owner=Pubkey.from_string(sol.multisig), amount=escrow.amount, decimals=sol.decimals,
            signers=[sn.agent.pubkey()])),
    ]
    sn.chain.airdrop(str(sn.agent.pubkey()), LAMPORTS_PER_SOL)
    blockhash, _ = sn.sol.client.latest_blockhash(Commitment("processed"))
    tx = Transaction([sn.agent], Message.new_with_blockhash(ixs, sn.agent.pubkey(), blockhash),
                     blockhash)
    with pytest.raises(Exception, match="MissingRequiredSignature|missing required signature"):
        sn.send(tx)
    sn.finalize()
    assert sn.status(trade) == "funded"
    assert sn.escrow(trade)[1].observed_amount == escrow.amount


def test_expired_blockhash_is_rebuilt_and_completed(sn: SolNode) -> None:
    trade = funded(sn)
    act(sn, trade, Action.MARK_PAID, "buyer", sn.buyer)
    assert sn.status(trade) == "paid"
    req = act(sn, trade, Action.RELEASE, "seller", sn.seller, sign=False)
    tx = sign_partially(decode_transaction(req.payload["transaction"]), SoftwareSigner(sn.seller))
    sig = str(tx.signatures[tx.message.account_keys.index(sn.seller.pubkey())])
    sn.chain.warp_slots(200)  # the seller took too long
    with pytest.raises(EscrowdError) as err:
        submit(sn, trade, Action.RELEASE, "seller", req.expiry, sig)
    assert err.value.code == "blockhash_expired" and err.value.http_status == 409
    # ask again: the same intent at a fresh blockhash
    again = act(sn, trade, Action.RELEASE, "seller", sn.seller, sign=False)
    assert again.payload["recent_blockhash"] != req.payload["recent_blockhash"]
    assert again.payload["action"] == "release"
    tx2 = sign_partially(decode_transaction(again.payload["transaction"]),
                         SoftwareSigner(sn.seller))
    sig2 = str(tx2.signatures[tx2.message.account_keys.index(sn.seller.pubkey())])
    out = submit(sn, trade, Action.RELEASE, "seller", again.expiry, sig2)
    assert out.status == "submitted"
    sn.finalize()
    assert sn.status(trade) == "completed"
    assert wsol_balance(sn, sn.buyer) == LAMPORTS_PER_SOL
    escrow, _ = sn.escrow(trade)
    assert escrow.payout_tx == out.ref and escrow.buyer_bps == 10_000


def _past_deadline(sn: SolNode, trade: int) -> None:
    with transaction(sn.node.sessions) as s:
        s.execute(update(P2PEscrow).where(P2PEscrow.p2p_order_id == trade)
                  .values(deadline=1_000, payment_deadline=1_000))


def test_agent_refunds_an_unpaid_trade_after_the_deadline(sn: SolNode) -> None:
    trade = funded(sn)
    with pytest.raises(EscrowdError) as err:  # before the deadline: no
        act(sn, trade, Action.RECLAIM, "seller", sn.seller)
    assert err.value.code in ("too_early", "policy_action_not_allowed")
    _past_deadline(sn, trade)
    out = act(sn, trade, Action.RECLAIM, "seller", sn.seller)
    assert out.status == "submitted"
    sn.finalize()
    assert sn.status(trade) == "refunded"
    assert wsol_balance(sn, sn.seller) == LAMPORTS_PER_SOL
    # the journal now holds "refund": a release of the same escrow is refused (I5)
    with transaction(sn.node.sessions) as s:
        from node.signing import signed_decision

        _e, sol = sn.escrow(trade)
        assert signed_decision(s, chain=sn.sol.chain_key,
                               escrow_key=f"solana:{sol.genesis_hash}:"
                               f"{sol.escrow_token_account}") == "refund"


def test_buyer_cancel_refunds_the_seller(sn: SolNode) -> None:
    trade = funded(sn)
    req = act(sn, trade, Action.CANCEL, "buyer", sn.buyer, sign=False)
    message = bytes(decode_transaction(req.payload["transaction"]).message_data())
    with pytest.raises(EscrowdError) as err:  # the seller is not a signer of the cancel
        submit(sn, trade, Action.CANCEL, "seller", req.expiry,
               str(sn.seller.sign_message(message)))
    assert err.value.code == "not_a_signer"
    # the buyer's wallet returns the whole partially signed transaction (base64)
    signed = sign_partially(decode_transaction(req.payload["transaction"]),
                            SoftwareSigner(sn.buyer))
    out = submit(sn, trade, Action.CANCEL, "buyer", 0, encode_transaction(signed))
    assert out.status == "submitted"
    sn.finalize()
    assert sn.status(trade) == "refunded"
    assert wsol_balance(sn, sn.seller) == LAMPORTS_PER_SOL
    assert wsol_balance(sn, sn.buyer) == 0


def test_agent_refuses_the_refund_when_paid_or_disputed(sn: SolNode) -> None:
    paid = funded(sn)
    act(sn, paid, Action.MARK_PAID, "buyer", sn.buyer)
    _past_deadline(sn, paid)
    with pytest.raises(EscrowdError) as err:
        act(sn, paid, Action.RECLAIM, "seller", sn.seller)
    assert err.value.code == "policy_action_not_allowed"
    assert "buyer marked paid" in err.value.message

    disputed = funded(sn)
    with transaction(sn.node.sessions) as s:
        buyer = s.scalar(select(User).where(User.username == "buyer"))
        assert buyer is not None
        s.add(P2PDispute(p2p_order_id=disputed, initiator_user_id=buyer.id,
                         dispute_type="other", description="no", status="open", evidence=[]))
    _past_deadline(sn, disputed)
    with pytest.raises(EscrowdError) as err:
        act(sn, disputed, Action.RECLAIM, "seller", sn.seller)
    assert err.value.code == "policy_action_not_allowed"
    assert "dispute open" in err.value.message
    # neither escrow moved
    sn.finalize()
    assert sn.status(paid) == "paid" and sn.status(disputed) == "funded"


def test_a_fact_signed_by_the_wrong_key_is_refused(sn: SolNode) -> None:
    trade = funded(sn)
    _e, sol = sn.escrow(trade)
    msg = fact_message(sn.sol.cluster, sol.escrow_token_account, Action.MARK_PAID)
    forged = sign_message_b58(SoftwareSigner(sn.seller), msg)  # the seller, not the buyer
    with pytest.raises(EscrowdError) as err:
        submit(sn, trade, Action.MARK_PAID, "buyer", 0, forged)
    assert err.value.code == "bad_signature"
    assert sn.status(trade) == "funded"


def test_a_surplus_keeps_the_escrow_funded_and_follows_the_payout(sn: SolNode) -> None:
    """Anyone can send tokens to a token account: more than the amount (here the
    seller's own over-funding) is still funded, and the payout moves the whole
    balance so the escrow account can be closed."""
    from wallets.solana.escrow import RentExemption, build_funding_transaction

    trade = sn.open_trade(LAMPORTS_PER_SOL)
    escrow, sol = sn.escrow(trade)
    with transaction(sn.node.sessions) as s:
        e, so = s.get(P2PEscrow, escrow.id), s.get(type(sol), sol.id)
        assert e is not None and so is not None
        accounts = sn.sol.accounts_of(so, e)
    blockhash, _ = sn.sol.client.latest_blockhash(Commitment("processed"))
    funding = build_funding_transaction(accounts, 3 * LAMPORTS_PER_SOL // 2,
                                        recent_blockhash=blockhash,
                                        rent=RentExemption.standard())
    sn.send(sign_partially(funding.transaction, SoftwareSigner(sn.seller)))
    sn.finalize()
    assert sn.status(trade) == "funded"
    assert sn.escrow(trade)[0].funded_amount == 3 * LAMPORTS_PER_SOL // 2
    act(sn, trade, Action.RELEASE, "seller", sn.seller)
    sn.finalize()
    assert sn.status(trade) == "completed"
    assert wsol_balance(sn, sn.buyer) == 3 * LAMPORTS_PER_SOL // 2


def test_a_ruled_payout_dropped_after_sending_is_rendered_again(sn: SolNode) -> None:
    """The node sent the ruled payout but it never landed (dropped; its blockhash
    expired): asking for the pending payout renders the same ruling at a fresh
    blockhash, the agent re-signs it under the same journal decision, the
    party co-signs, and it pays out once."""
    from node.db.models import SolPayout

    trade = funded(sn)
    act(sn, trade, Action.MARK_PAID, "buyer", sn.buyer)
    act(sn, trade, Action.DISPUTE, "buyer", sn.buyer)
    assert sn.status(trade) == "disputed"
    with transaction(sn.node.sessions) as s:
        buyer = s.scalar(select(User).where(User.username == "buyer"))
        arb = s.scalar(select(User).where(User.username == "arbitrator"))
        order = s.get(P2POrder, trade)
        assert buyer is not None and arb is not None and order is not None
        assert order.escrow is not None
        s.add(P2PDispute(p2p_order_id=trade, initiator_user_id=buyer.id, dispute_type="other",
                         description="x", status="resolved", buyer_bps=6000, evidence=[]))
        ruled = sn.sol.agent_rule(s, escrow=order.escrow, buyer_bps=6000, requested_by=arb)
    # the buyer (60%) co-signed and the node sent it ... but it was dropped
    with transaction(sn.node.sessions) as s:
        payout = s.get(SolPayout, int(ruled.ref))
        assert payout is not None and payout.action == "split"
        payout.status = "submitted"
        payout.tx_signature = str(Keypair().sign_message(b"never sent"))
    with transaction(sn.node.sessions) as s:
        order = s.get(P2POrder, trade)
        assert order is not None and order.escrow is not None
        assert sn.sol.pending_payout(s, order.escrow) is None  # still in flight
    sn.chain.warp_slots(200)
    with transaction(sn.node.sessions) as s:
        order = s.get(P2POrder, trade)
        buyer = s.scalar(select(User).where(User.username == "buyer"))
        assert order is not None and order.escrow is not None and buyer is not None
        again = sn.sol.pending_payout(s, order.escrow)
        assert again is not None and again.id != int(ruled.ref)
        assert (again.action, again.buyer_bps) == ("split", 6000)
        tx = decode_transaction(again.transaction)
        assert sn.agent.pubkey() not in [k for k, sig in zip(
            tx.message.account_keys, tx.signatures, strict=False) if sig == Signature.default()]
        signed = sign_partially(tx, SoftwareSigner(sn.buyer))
        out = sn.sol.submit_payout(s, escrow=order.escrow, payout=again,
                                   signed=encode_transaction(signed), requested_by=buyer)
    assert out.status == "submitted"
    sn.finalize()
    assert sn.status(trade) == "resolved"
    assert wsol_balance(sn, sn.buyer) == LAMPORTS_PER_SOL * 6000 // 10_000
    assert wsol_balance(sn, sn.seller) == LAMPORTS_PER_SOL * 4000 // 10_000
