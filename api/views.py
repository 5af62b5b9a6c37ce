"""Models to response bodies."""

from __future__ import annotations

from api.schemas import (
    DisputePublic,
    EscrowPublic,
    OrderPublic,
    SignPayload,
    SubmittedPublic,
)
from node.chain_trades import SignRequest, Submitted
from node.db.models import P2PDispute, P2POrder
from node.domain.escrow import Action
from node.market.opening import pricing_fields


def _s(v: int | None) -> str | None:
    return None if v is None else str(v)


def order_public(o: P2POrder) -> OrderPublic:
    e = o.escrow
    escrow = None
    if e is not None:
        escrow = EscrowPublic(
            chain=e.chain,
            network=e.network,
            contract_address=e.contract_address,
            escrow_id=e.escrow_key,
            ref=e.ref,
            token_address=e.token_address,
            amount=str(e.amount),
            funded_amount=str(e.funded_amount),
            seller_address=e.seller_address,
            buyer_address=e.buyer_address,
            arbitrator_address=e.arbitrator_address,
            fee_bps=e.fee_bps,
            status=e.status,
            payment_deadline=e.payment_deadline,
            deadline=e.deadline,
            funded_tx=e.funded_tx,
            payout_tx=e.payout_tx,
            buyer_bps=e.buyer_bps,
        )
    return OrderPublic(
        id=o.id,
        kind=o.kind,
        parent_id=o.parent_id,
        seller_id=o.seller_id,
        buyer_id=o.buyer_id,
        crypto_currency_id=o.crypto_currency_id,
        currency_symbol=o.currency.symbol,
        order_type=o.order_type,
        amount=str(o.amount),
        min_amount=_s(o.min_amount),
        max_amount=_s(o.max_amount),
        remaining_amount=_s(o.remaining_amount),
        price_per_unit=o.price_per_unit,
        total_amount=o.total_amount,
        fiat_currency=o.fiat_currency,
        payment_method=o.payment_method,
        payment_methods=list(o.payment_methods or []),
        status=o.status,
        seller_address=o.seller_address,
        buyer_address=o.buyer_address,
        matched_at=o.matched_at,
        paid_at=o.paid_at,
        completed_at=o.completed_at,
        cancelled_at=o.cancelled_at,
        terms_and_conditions=o.terms_and_conditions,
        crypto_transaction_id=o.crypto_transaction_id,
        created_at=o.created_at,
        escrow=escrow,
        **pricing_fields(o),
    )


def dispute_public(d: P2PDispute) -> DisputePublic:
    return DisputePublic.model_validate(d, from_attributes=True)


def sign_payload(r: SignRequest) -> SignPayload:
    return SignPayload(
        action=r.action.name.lower(),
        payload=r.payload,
        digest=r.digest,
        expiry=r.expiry,
        nonce=r.nonce,
    )


def submitted_public(s: Submitted, action: Action) -> SubmittedPublic:
    return SubmittedPublic(status=s.status, action=action.name.lower(), kind=s.kind, ref=s.ref)
