"""The Bitcoin escrow fold (node.domain.btc_escrow), pure: deposits add up to
funding, extra and repeated deposits are kept, a removed deposit un-funds,
spends are classified by witness branch and outputs, and the off-chain facts
(paid, disputed, cancelled) lie over the chain's state."""

from __future__ import annotations

from typing import Any

from node.domain.btc_escrow import BtcTerms, btc_trade_status, classify_spend, fold_btc_events
from node.domain.escrow import ChainState, ConfirmedEvent, TradeStatus

TERMS = BtcTerms(amount_sat=100_000, buyer_script="0014" + "bb" * 20,
                 seller_script="0014" + "55" * 20)


def dep(block: int, txid: str, amount: int, vout: int = 0, i: int = 0) -> ConfirmedEvent:
    return ConfirmedEvent("Deposit", block, i, {"txid": txid, "vout": vout,
                                                "amount_sat": amount, "script": "00"}, txid)


def spend(block: int, txid: str, spent: str, path: str, outputs: list[Any]) -> ConfirmedEvent:
    return ConfirmedEvent("Spend", block, 0, {"txid": txid, "spent": spent, "path": path,
                                              "outputs": outputs}, txid)


def test_under_then_complete_then_extra() -> None:
    v = fold_btc_events([dep(5, "a" * 64, 60_000)], TERMS)
    assert v.state is ChainState.NONE and v.deposited_sat == 60_000
    assert btc_trade_status(v) is TradeStatus.FUNDING_MISMATCH
    v = fold_btc_events([dep(5, "a" * 64, 60_000), dep(6, "b" * 64, 40_000)], TERMS)
    assert v.state is ChainState.FUNDED and v.funded_tx == "b" * 64 and v.funded_block == 6
    v = fold_btc_events([dep(5, "a" * 64, 60_000), dep(6, "b" * 64, 40_000),
                         dep(7, "c" * 64, 100_000)], TERMS)
    assert v.extra_sat(TERMS) == 100_000 and len(v.deposits) == 3
    assert v.funded_tx == "b" * 64  # the later repeat does not move the funding point


def test_same_output_twice_counts_once_and_order_does_not_matter() -> None:
    evs = [dep(6, "b" * 64, 50_000), dep(5, "a" * 64, 50_000), dep(5, "a" * 64, 50_000)]
    v = fold_btc_events(evs, TERMS)
    assert v.deposited_sat == 100_000 and v.funded_tx == "b" * 64


def test_removed_deposit_unfunds() -> None:
    assert fold_btc_events([], TERMS).state is ChainState.NONE
    assert btc_trade_status(fold_btc_events([], TERMS), paid=True) is TradeStatus.AWAITING_FUNDING


def test_spends_are_classified() -> None:
    b, s = [TERMS.buyer_script, 99_000], [TERMS.seller_script, 1_000]
    assert classify_spend("multisig", [b], TERMS) == "release"
    assert classify_spend("multisig", [s], TERMS) == "refund"
    assert classify_spend("multisig", [b, s], TERMS) == "split"
    assert classify_spend("timelock", [s], TERMS) == "timelock_refund"
    assert classify_spend("multisig", [["0014" + "00" * 20, 5]], TERMS) == "other"
    v = fold_btc_events([dep(5, "a" * 64, 100_000),
                         spend(9, "d" * 64, "a" * 64 + ":0", "multisig", [b])], TERMS)
    assert v.state is ChainState.RELEASED and v.payout_tx == "d" * 64 and v.unspent_sat == 0
    assert btc_trade_status(v) is TradeStatus.COMPLETED
    assert btc_trade_status(v, disputed=True) is TradeStatus.RESOLVED
    # a spend of an output the escrow never had is ignored
    v = fold_btc_events([dep(5, "a" * 64, 100_000),
                         spend(9, "d" * 64, "e" * 64 + ":0", "multisig", [b])], TERMS)
    assert v.state is ChainState.FUNDED


def test_offchain_facts_over_the_fold() -> None:
    funded = fold_btc_events([dep(5, "a" * 64, 100_000)], TERMS)
    assert btc_trade_status(funded) is TradeStatus.FUNDED
    assert btc_trade_status(funded, paid=True) is TradeStatus.PAID
    assert btc_trade_status(funded, paid=True, disputed=True) is TradeStatus.DISPUTED
    none = fold_btc_events([], TERMS)
    assert btc_trade_status(none, offchain=TradeStatus.EXPIRED) is TradeStatus.EXPIRED
    # coins that arrive after expiry are shown, not ignored
    assert btc_trade_status(funded, offchain=TradeStatus.EXPIRED) is TradeStatus.FUNDED
