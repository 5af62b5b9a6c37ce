"""How I3 holds on Solana: the node's agent-key signing policy, and a refund it allows.

Proves: ``allowed_actions`` lets the agent key co-sign a refund to the seller exactly when
the deadline has passed, no dispute is open and the buyer has not marked paid (or the buyer
cancelled); a release only after the seller confirmed; during a dispute nothing until a
ruling, then exactly the ruling (a split only with the ruled bps); after the node signed an
action only that action again (I5); nothing before funding or after payout. End to end on
LiteSVM: before the deadline the node refuses the seller's refund, after it the seller's
and the agent's signatures refund exactly.
"""

from __future__ import annotations

import pytest

from wallets.solana.errors import ActionNotAllowedError, InvalidEscrowParamsError
from wallets.solana.payout import PayoutAction, PayoutIntent, build_payout_transaction
from wallets.solana.policy import (
    EscrowPolicyState,
    Ruling,
    allowed_actions,
    require_action_allowed,
)
from wallets.solana.signer import (
    SoftwareSigner,
    decode_transaction,
    encode_transaction,
    require_complete,
    sign_partially,
)
from wallets.solana.testing import EscrowWorld, Ledger
from wallets.solana.txcheck import cosign_payout

DEADLINE = 1_800_000_000
BEFORE, AT, AFTER = DEADLINE - 1, DEADLINE, DEADLINE + 3600
R, F, S = PayoutAction.RELEASE, PayoutAction.REFUND, PayoutAction.SPLIT


def state(**kw) -> EscrowPolicyState:
    return EscrowPolicyState(funded=kw.pop("funded", True), deadline=DEADLINE, **kw)


@pytest.mark.parametrize(
    ("kw", "now", "expected"),
    [
        ({}, BEFORE, set()),
        ({}, AT, {F}),
        ({}, AFTER, {F}),
        ({"buyer_marked_paid": True}, AFTER, set()),
        ({"dispute_open": True}, AFTER, set()),
        ({"buyer_cancelled": True}, BEFORE, {F}),
        ({"seller_confirmed_release": True}, BEFORE, {R}),
        ({"seller_confirmed_release": True, "buyer_marked_paid": True}, AFTER, {R}),
        ({"dispute_open": True, "seller_confirmed_release": True}, BEFORE, set()),
        ({"dispute_open": True, "ruling": Ruling(R)}, BEFORE, {R}),
        ({"dispute_open": True, "ruling": Ruling(F)}, BEFORE, {F}),
        ({"dispute_open": True, "ruling": Ruling(S, 2500)}, AFTER, {S}),
        ({"signed_action": R}, AFTER, {R}),
        ({"signed_action": F, "seller_confirmed_release": True}, BEFORE, {F}),
        ({"funded": False}, AFTER, set()),
        ({"paid_out": True}, AFTER, set()),
    ],
)
def test_allowed_actions(kw, now, expected):
    assert set(allowed_actions(state(**kw), now).actions) == expected


def test_split_only_with_the_ruled_share():
    w = EscrowWorld.new(Ledger.new())
    ruled = state(dispute_open=True, ruling=Ruling(S, 2500))
    common = {
        "escrow": w.escrow,
        "amount": 100,
        "fee_payer": w.buyer.pubkey(),
        "signers": (w.buyer.pubkey(), w.arbitrator.pubkey()),
    }
    require_action_allowed(ruled, PayoutIntent(action=S, buyer_bps=2500, **common), AFTER)
    with pytest.raises(ActionNotAllowedError) as info:
        require_action_allowed(ruled, PayoutIntent(action=S, buyer_bps=2501, **common), AFTER)
    assert info.value.code == "policy_split_not_ruled"
    with pytest.raises(ActionNotAllowedError) as info:
        require_action_allowed(ruled, PayoutIntent(action=R, **common), AFTER)
    assert info.value.code == "policy_action_not_allowed"
    assert info.value.fields["allowed"] == ["split"]


def test_invalid_rulings_are_refused():
    with pytest.raises(InvalidEscrowParamsError):
        Ruling(S)
    with pytest.raises(InvalidEscrowParamsError):
        Ruling(R, 5000)


def test_seller_recovers_after_deadline_with_the_agent_key():
    w = EscrowWorld.new(Ledger.new())
    w.fund(9_000_000)
    seller_before = w.ledger.token_balance(w.seller_token_account)
    agent = SoftwareSigner(w.arbitrator)  # the node's agent key holds the arbitrator slot
    intent = PayoutIntent(
        escrow=w.escrow,
        action=F,
        amount=9_000_000,
        signers=(w.seller.pubkey(), agent.pubkey()),
        fee_payer=w.seller.pubkey(),
    )
    # The seller's wallet signs the refund and hands it to the node.
    tx = sign_partially(
        build_payout_transaction(intent, recent_blockhash=w.ledger.blockhash()),
        SoftwareSigner(w.seller),
    )
    handed = decode_transaction(encode_transaction(tx))

    with pytest.raises(ActionNotAllowedError):
        require_action_allowed(state(), intent, BEFORE)
    require_action_allowed(state(), intent, AFTER)
    w.ledger.send(require_complete(cosign_payout(handed, intent, agent)))
    assert w.ledger.token_balance(w.seller_token_account) == seller_before + 9_000_000
