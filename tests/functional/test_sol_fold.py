"""The Solana escrow's pure fold (``node.domain.sol_escrow``), no I/O: funded
only when the escrow token account, owned by the escrow's multisig and of its
mint, holds the amount at the commitment (a surplus is shown and still
funded, less is a mismatch); a deposit the committed observation does not show
(dropped, or rolled back below the commitment) is not credited; payouts fold to
completed, refunded or resolved with the buyer's share; off-chain facts move
funded to paid and disputed."""

from __future__ import annotations

from node.domain.escrow import ChainState, TradeStatus
from node.domain.sol_escrow import (
    Movement,
    Observation,
    OffchainFacts,
    SolTerms,
    fold,
    trade_status,
)

T = SolTerms(seller="S", buyer="B", arbitrator="A", mint="M", multisig="MS", amount=1000,
             deadline=2_000_000_000)
DEPOSIT = Movement("dep", 10, 1000)


def obs(amount: int, *, owner: str = "MS", mint: str = "M", exists: bool = True) -> Observation:
    return Observation(slot=20, exists=exists, mint=mint, owner=owner, amount=amount)


def test_exact_amount_at_the_commitment_is_funded() -> None:
    sv = fold(T, obs(1000), [DEPOSIT])
    assert sv.view.state is ChainState.FUNDED and sv.view.funded_tx == "dep"
    assert trade_status(sv) is TradeStatus.FUNDED


def test_less_is_a_mismatch_never_funded_more_is_funded_with_the_surplus_shown() -> None:
    under, over = fold(T, obs(999), [DEPOSIT]), fold(T, obs(1001), [DEPOSIT])
    assert (under.funding, over.funding) == ("under", "over")
    assert under.view.state is ChainState.NONE
    assert trade_status(under) is TradeStatus.FUNDING_MISMATCH
    # anyone can send tokens to a token account: a surplus never un-funds an escrow
    assert over.view.state is ChainState.FUNDED and over.observed_amount == 1001
    assert trade_status(over) is TradeStatus.FUNDED


def test_an_account_not_owned_by_the_multisig_or_of_another_mint_is_not_funded() -> None:
    assert fold(T, obs(1000, owner="X"), [DEPOSIT]).view.state is ChainState.NONE
    assert fold(T, obs(1000, mint="X"), [DEPOSIT]).view.state is ChainState.NONE


def test_a_deposit_missing_at_the_commitment_is_not_credited() -> None:
    """A movement seen earlier but absent from the committed balance (the
    transaction was dropped or never reached the commitment)."""
    for o in (None, obs(0), obs(0, exists=False)):
        sv = fold(T, o, [DEPOSIT])
        assert sv.view.state is ChainState.NONE
        assert trade_status(sv) is TradeStatus.AWAITING_FUNDING
    assert trade_status(fold(T, None, []), offchain=TradeStatus.EXPIRED) is TradeStatus.EXPIRED
    # a committed funding overrides an off-chain expiry: the coins are in escrow
    assert trade_status(fold(T, obs(1000), [DEPOSIT]),
                        offchain=TradeStatus.EXPIRED) is TradeStatus.FUNDED


def test_offchain_facts_move_funded_to_paid_and_disputed() -> None:
    paid = fold(T, obs(1000), [DEPOSIT], OffchainFacts(buyer_marked_paid=True))
    disputed = fold(T, obs(1000), [DEPOSIT],
                    OffchainFacts(buyer_marked_paid=True, dispute_open=True))
    assert paid.view.state is ChainState.PAID and disputed.view.state is ChainState.DISPUTED
    # facts never fund an empty escrow
    assert fold(T, obs(0), [], OffchainFacts(True, True)).view.state is ChainState.NONE


def test_payouts_fold_to_their_outcome() -> None:
    closed = obs(0, exists=False)
    rel = fold(T, closed, [DEPOSIT, Movement("p", 30, -1000, to_buyer=1000, closed=True)])
    ref = fold(T, closed, [DEPOSIT, Movement("p", 30, -1000, to_seller=1000, closed=True)])
    spl = fold(T, closed, [DEPOSIT, Movement("p", 30, -1000, 300, 700, closed=True)])
    assert (rel.view.state, rel.view.buyer_bps) == (ChainState.RELEASED, 10_000)
    assert (ref.view.state, ref.view.buyer_bps) == (ChainState.REFUNDED, 0)
    assert (spl.view.state, spl.view.buyer_bps, spl.view.seller_amount) == (
        ChainState.RESOLVED, 3000, 700)
    assert [trade_status(x) for x in (rel, ref, spl)] == [
        TradeStatus.COMPLETED, TradeStatus.REFUNDED, TradeStatus.RESOLVED]
    assert spl.view.payout_tx == "p" and spl.view.funded_tx == "dep"


def test_folding_is_order_independent_and_idempotent() -> None:
    moves = [Movement("p", 30, -1000, 300, 700, closed=True), DEPOSIT]
    a = fold(T, obs(0, exists=False), moves)
    b = fold(T, obs(0, exists=False), list(reversed(moves)))
    assert a == b
