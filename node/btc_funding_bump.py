"""A seller's stuck funding transaction, bumped by CPFP on request.

When the seller's funding transaction is still unconfirmed after the payment
window, the seller asks the node for a child: a PSBT spending the funding
transaction's change output (P2WPKH, back in the seller's wallet) to the
seller's payout address, with the fee that brings the package (parent +
child) to the target feerate (the seller's ``feerate_sat_vb`` or the node's
estimate). The seller signs it in their own wallet and posts it back with the
same parameters; the node checks it (``wallets.bitcoin.cpfp``: only that
input, only the seller's address, SIGHASH_ALL by the change key, package
feerate >= target, fee under ``max_fee_sat``), verifies it with
libbitcoinkernel and broadcasts it. The node never holds the seller's key.

An expired trade may still be bumped: a deposit that confirms later funds the
escrow as the chain says (the fold wins over the expiry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from embit.transaction import Transaction
from sqlalchemy.orm import Session

from node.chain_trades import Submitted
from node.chains.btc.adapter import MempoolEntry
from node.chains.btc.rpc import BtcBroadcastError
from node.db.models import P2PEscrow, P2POrder
from node.domain.escrow import TradeStatus
from node.errors import EscrowStateError, ValidationError
from wallets.bitcoin import ConsensusError, verify_transaction
from wallets.bitcoin.cpfp import ParentOutput, build_cpfp_psbt, check_cpfp_psbt
from wallets.errors import WalletError

if TYPE_CHECKING:
    from node.btc_trades import BtcTradeChain

_BUMPABLE = (TradeStatus.AWAITING_FUNDING.value, TradeStatus.EXPIRED.value)


@dataclass(frozen=True)
class FundingBumpRequest:
    funding_txid: str
    change_vout: int | None = None
    feerate_sat_vb: int | None = None


@dataclass(frozen=True)
class _Parent:
    entry: MempoolEntry
    change: ParentOutput
    dest_script: bytes
    target: int


def _window_over(order: P2POrder, escrow: P2PEscrow, now: datetime) -> bool:
    start = order.matched_at or escrow.created_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return now.timestamp() >= start.timestamp() + escrow.payment_window_s


def _parent(chain: BtcTradeChain, session: Session, escrow: P2PEscrow,
            req: FundingBumpRequest) -> _Parent:
    from node.btc_trades import script_hex

    order: P2POrder = escrow.order
    if order.status not in _BUMPABLE:
        raise EscrowStateError("the trade is not waiting for its funding",
                               code="not_awaiting_funding", state=order.status)
    if not _window_over(order, escrow, datetime.now(UTC)):
        raise EscrowStateError("the payment window is still open: the funding may confirm "
                               "on its own", code="payment_window_open")
    txid = req.funding_txid.lower()
    entry = chain.adapter.mempool_entry(txid)
    if entry is None:
        raise EscrowStateError("the funding transaction is not waiting in the mempool "
                               "(confirmed, replaced or unknown)", code="funding_not_in_mempool")
    btc = chain.btc_of(session, escrow)
    tx = Transaction.parse(chain.adapter.raw_transaction(txid))
    escrow_spk = bytes.fromhex(btc.script_pubkey)
    outs = [(n, bytes(o.script_pubkey.data), int(o.value)) for n, o in enumerate(tx.vout)]
    if not any(spk == escrow_spk for _n, spk, _v in outs):
        raise ValidationError("this transaction does not pay the escrow address",
                              code="not_escrow_funding", field="funding_txid")
    others = [o for o in outs if o[1] != escrow_spk]
    if req.change_vout is not None:
        picked = [o for o in others if o[0] == req.change_vout]
        if not picked:
            raise ValidationError("change_vout is not a change output of the funding",
                                  field="change_vout")
    elif len(others) == 1:
        picked = others
    else:
        raise ValidationError("name the seller's change output (change_vout)",
                              code="change_output_ambiguous", field="change_vout")
    n, spk, value = picked[0]
    target = req.feerate_sat_vb or chain.feerate()
    if entry.fee_sat >= target * entry.vsize:
        raise EscrowStateError(f"the funding already pays {entry.fee_sat / entry.vsize:.2f} "
                               f"sat/vB (target {target})", code="funding_feerate_already_met")
    try:
        dest = bytes.fromhex(script_hex(btc.seller_payout_address))
    except Exception as exc:  # noqa: BLE001 - a stored address always parses
        raise ValidationError("the seller's payout address does not parse") from exc
    return _Parent(entry=entry, change=ParentOutput(txid, n, value, spk), dest_script=dest,
                   target=target)


def funding_bump_psbt(chain: BtcTradeChain, session: Session, *, escrow: P2PEscrow,
                      req: FundingBumpRequest) -> dict[str, Any]:
    """The unsigned child (CPFP) for the seller's wallet."""
    from node.btc_trades import _wallet_error

    p = _parent(chain, session, escrow, req)
    try:
        child = build_cpfp_psbt(p.change, p.dest_script, parent_fee_sat=p.entry.fee_sat,
                                parent_vsize=p.entry.vsize, target_sat_vb=p.target)
    except WalletError as exc:
        raise _wallet_error(exc) from None
    return {
        "psbt": child.psbt,
        "funding_txid": p.change.txid,
        "change_vout": p.change.vout,
        "change_amount_sat": p.change.amount_sat,
        "pays_to": chain.btc_of(session, escrow).seller_payout_address,
        "fee_sat": child.fee_sat,
        "vsize_max": child.vsize,
        "funding_fee_sat": p.entry.fee_sat,
        "funding_vsize": p.entry.vsize,
        "target_feerate_sat_vb": p.target,
        "package_feerate_sat_vb": round(float(child.package_feerate_sat_vb), 2),
        "note": "sign this PSBT in the wallet that funded the escrow (SIGHASH_ALL) and post "
        "it back with the same funding_txid, change_vout and feerate_sat_vb",
    }


def submit_funding_bump(chain: BtcTradeChain, session: Session, *, escrow: P2PEscrow,
                        req: FundingBumpRequest, psbt: str) -> Submitted:
    """The seller's signed child: checked, verified, broadcast."""
    from node.btc_trades import BtcPolicyError, _wallet_error

    p = _parent(chain, session, escrow, req)
    try:
        checked = check_cpfp_psbt(psbt, parent=p.change, dest_script=p.dest_script,
                                  parent_fee_sat=p.entry.fee_sat, parent_vsize=p.entry.vsize,
                                  target_sat_vb=p.target)
        if checked.fee_sat > chain.max_fee_sat:
            raise BtcPolicyError(f"the child's fee {checked.fee_sat} sat is above the cap",
                                 code="cpfp_fee_above_cap", fee_sat=checked.fee_sat)
        verify_transaction(checked.raw, [(p.change.script_pubkey, p.change.amount_sat)])
    except ConsensusError as exc:
        raise BtcPolicyError(f"the child does not verify: {exc.message}",
                             code="script_verify_failed") from None
    except WalletError as exc:
        raise _wallet_error(exc) from None
    try:
        txid = chain.adapter.broadcast(checked.raw)
    except BtcBroadcastError as exc:
        raise EscrowStateError(exc.message, code="btc_broadcast_refused") from None
    return Submitted(kind="btc_tx", ref=txid, status="broadcast")
