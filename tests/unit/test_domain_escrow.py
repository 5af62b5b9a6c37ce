"""The escrow state machine: folding confirmed events gives the chain state,
a removed event (reorg) gives the earlier state back (I6), terms that differ
from the trade's are never credited, and every action is refused outside its
parties and states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.domain.escrow import (
    BPS,
    Action,
    ChainState,
    ConfirmedEvent,
    EscrowTerms,
    EscrowView,
    Role,
    TradeStatus,
    check_action,
    decision_of,
    fold_events,
    role_of,
    split_amounts,
    trade_status,
)
from node.errors import EscrowStateError, PermissionDeniedError, ValidationError

S, B, A, T = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20, "0x" + "00" * 20
TERMS = EscrowTerms(seller=S, buyer=B, arbitrator=A, token=T, amount=1000)


def opened(block: int = 1, **over: object) -> ConfirmedEvent:
    args = {
        "seller": S, "buyer": B, "arbitrator": A, "token": T, "amount": "1000",
        "fee_bps": 50, "payment_deadline": 100, "deadline": 200, "ref": "0x" + "00" * 32,
    }
    args.update(over)
    return ConfirmedEvent("Opened", block, 0, args, tx_hash="0xfund")


def ev(name: str, block: int, **args: object) -> ConfirmedEvent:
    return ConfirmedEvent(name, block, 0, args, tx_hash=f"0x{name}")


def test_nothing_confirmed_is_awaiting_funding() -> None:
    view = fold_events([])
    assert view.state is ChainState.NONE
    assert trade_status(view, TERMS) is TradeStatus.AWAITING_FUNDING


def test_funding_credits_the_agreed_terms() -> None:
    view = fold_events([opened()])
    assert view.state is ChainState.FUNDED and view.amount == 1000
    assert view.funded_tx == "0xfund"
    assert trade_status(view, TERMS) is TradeStatus.FUNDED


@pytest.mark.parametrize(
    "over",
    [{"amount": "999"}, {"buyer": A}, {"arbitrator": B}, {"token": "0x" + "44" * 20}],
)
def test_funding_with_other_terms_is_not_credited(over: dict[str, object]) -> None:
    assert trade_status(fold_events([opened(**over)]), TERMS) is TradeStatus.FUNDING_MISMATCH


def test_addresses_compare_case_insensitively() -> None:
    view = fold_events([opened(seller=S.upper().replace("0X", "0x"))])
    assert trade_status(view, TERMS) is TradeStatus.FUNDED


def test_reorg_removing_the_funding_unfunds() -> None:
    events = [opened(1), ev("MarkedPaid", 2, buyer=B)]
    assert trade_status(fold_events(events), TERMS) is TradeStatus.PAID
    assert trade_status(fold_events(events[1:]), TERMS) is TradeStatus.AWAITING_FUNDING


def test_full_release_path() -> None:
    view = fold_events([opened(1), ev("MarkedPaid", 2), ev("Released", 3, amount="995", fee="5")])
    assert view.state is ChainState.RELEASED
    assert (view.buyer_amount, view.fee_amount, view.payout_tx) == (995, 5, "0xReleased")
    assert trade_status(view, TERMS) is TradeStatus.COMPLETED


def test_dispute_resolved_split() -> None:
    view = fold_events([
        opened(1), ev("Disputed", 2, by=B),
        ev("Resolved", 3, buyer_bps=3000, buyer_amount="299", seller_amount="700", fee="1"),
    ])
    assert view.state is ChainState.RESOLVED and view.buyer_bps == 3000
    assert trade_status(view, TERMS) is TradeStatus.RESOLVED


def test_impossible_event_orders_are_ignored() -> None:
    # a Released before any Opened, or a second Opened, is not trusted
    assert fold_events([ev("Released", 1, amount="1", fee="0")]).state is ChainState.NONE
    view = fold_events([opened(1), opened(2, amount="5")])
    assert view.amount == 1000
    view = fold_events([opened(1), ev("Refunded", 2, amount="1000", reason=1),
                        ev("Released", 3, amount="1", fee="0")])
    assert view.state is ChainState.REFUNDED


def test_events_fold_in_chain_order_whatever_the_input_order() -> None:
    events = [ev("MarkedPaid", 2), opened(1)]
    assert fold_events(events).state is ChainState.PAID


def test_offchain_cancel_is_overridden_by_a_real_funding() -> None:
    assert trade_status(fold_events([]), TERMS, offchain=TradeStatus.EXPIRED) is TradeStatus.EXPIRED
    view = fold_events([opened()])
    assert trade_status(view, TERMS, offchain=TradeStatus.EXPIRED) is TradeStatus.FUNDED


@given(
    amount=st.integers(min_value=0, max_value=2**256 - 1),
    bps=st.integers(min_value=0, max_value=BPS),
    fee=st.integers(min_value=0, max_value=500),
)
def test_split_conserves_the_amount(amount: int, bps: int, fee: int) -> None:
    to_buyer, to_seller, fee_amount = split_amounts(amount, bps, fee)
    assert to_buyer + to_seller + fee_amount == amount
    assert min(to_buyer, to_seller, fee_amount) >= 0
    assert fee_amount <= (amount * bps // BPS) * 500 // BPS


@pytest.mark.parametrize("bps,fee", [(-1, 0), (10_001, 0), (0, 501)])
def test_split_refuses_out_of_range(bps: int, fee: int) -> None:
    with pytest.raises(ValidationError):
        split_amounts(100, bps, fee)


def funded(state: ChainState = ChainState.FUNDED) -> EscrowView:
    return EscrowView(state=state, seller=S, buyer=B, arbitrator=A, token=T, amount=1000,
                      payment_deadline=100, deadline=200)


def test_roles() -> None:
    assert role_of(TERMS, S) is Role.SELLER
    assert role_of(TERMS, B.upper().replace("0X", "0x")) is Role.BUYER
    assert role_of(TERMS, A) is Role.ARBITRATOR
    assert role_of(TERMS, "0x" + "99" * 20) is Role.OUTSIDER
    assert role_of(TERMS, None) is Role.OUTSIDER


@pytest.mark.parametrize(
    "action,role",
    [
        (Action.MARK_PAID, Role.BUYER),
        (Action.RELEASE, Role.SELLER),
        (Action.CANCEL, Role.BUYER),
        (Action.DISPUTE, Role.BUYER),
        (Action.DISPUTE, Role.SELLER),
    ],
)
def test_allowed_actions_on_a_funded_escrow(action: Action, role: Role) -> None:
    check_action(funded(), action, role, now=50)


@pytest.mark.parametrize(
    "action,role",
    [
        (Action.MARK_PAID, Role.SELLER),
        (Action.RELEASE, Role.BUYER),
        (Action.RELEASE, Role.ARBITRATOR),
        (Action.CANCEL, Role.SELLER),
        (Action.RESOLVE, Role.BUYER),
        (Action.RESOLVE, Role.OUTSIDER),
        (Action.DISPUTE, Role.ARBITRATOR),
        (Action.RECLAIM, Role.BUYER),
    ],
)
def test_wrong_party_is_refused(action: Action, role: Role) -> None:
    with pytest.raises(PermissionDeniedError) as err:
        check_action(funded(ChainState.DISPUTED if action is Action.RESOLVE else ChainState.FUNDED),
                     action, role, now=50)
    assert err.value.code == "wrong_party"


def test_wrong_state_is_refused() -> None:
    with pytest.raises(EscrowStateError):
        check_action(funded(ChainState.NONE), Action.MARK_PAID, Role.BUYER, now=50)
    with pytest.raises(EscrowStateError):
        check_action(funded(ChainState.FUNDED), Action.RESOLVE, Role.ARBITRATOR, now=50)
    for final in (ChainState.RELEASED, ChainState.REFUNDED, ChainState.RESOLVED):
        for action, role in ((Action.RELEASE, Role.SELLER), (Action.CANCEL, Role.BUYER)):
            with pytest.raises(EscrowStateError):
                check_action(funded(final), action, role, now=50)


def test_time_rules() -> None:
    with pytest.raises(EscrowStateError, match="payment window"):
        check_action(funded(), Action.MARK_PAID, Role.BUYER, now=101)
    with pytest.raises(EscrowStateError, match="deadline"):
        check_action(funded(ChainState.PAID), Action.DISPUTE, Role.BUYER, now=200)
    with pytest.raises(EscrowStateError, match="too_early|payment window"):
        check_action(funded(), Action.RECLAIM, Role.SELLER, now=100)
    check_action(funded(), Action.RECLAIM, Role.SELLER, now=101)
    with pytest.raises(EscrowStateError):
        check_action(funded(ChainState.PAID), Action.RECLAIM, Role.SELLER, now=200)
    check_action(funded(ChainState.PAID), Action.RECLAIM, Role.SELLER, now=201)


def test_decisions_conflict_as_the_journal_needs() -> None:
    assert decision_of(Action.RELEASE) == decision_of(Action.RESOLVE, BPS) == "release"
    assert decision_of(Action.CANCEL) == decision_of(Action.RECLAIM) == "refund"
    assert decision_of(Action.RESOLVE, 0) == "refund"
    assert decision_of(Action.RESOLVE, 3000) == "split:3000"
    with pytest.raises(ValidationError):
        decision_of(Action.MARK_PAID)
