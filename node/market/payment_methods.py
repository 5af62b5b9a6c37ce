"""Payment methods (the seed's ``p2p_crypto_payment_methods``): a trader's
accounts for being paid. Account name, number and free-form details are
stored encrypted (``node.market.crypto``); they are shown in clear to their
owner, and to the counterparty of an active trade (with an audit record),
never to anyone else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from node.db.models import P2POrder, User
from node.db.models_market import PaymentMethod
from node.domain.escrow import TradeStatus
from node.errors import EscrowStateError, NotFoundError, PermissionDeniedError, ValidationError
from node.market.crypto import DetailsCipher

PAYMENT_TYPES = (
    "bank_transfer",
    "mobile_money",
    "paypal",
    "venmo",
    "cash_app",
    "card",
    "cash_deposit",
    "gift_card",
    "other",
)
MAX_METHODS = 20
# trades whose parties see each other's payment details: matched, funded,
# paid or disputed (not yet ended)
ACTIVE_TRADE = frozenset(
    {
        TradeStatus.AWAITING_FUNDING.value,
        TradeStatus.FUNDED.value,
        TradeStatus.PAID.value,
        TradeStatus.DISPUTED.value,
    }
)
UNSET: Any = object()


@dataclass(frozen=True)
class MethodInput:
    payment_type: str
    name: str
    payment_provider: str | None = None
    account_name: str | None = None
    account_number: str | None = None
    bank_name: str | None = None
    country_code: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    is_default: bool = False


@dataclass(frozen=True)
class MethodView:
    """A payment method as shown: in clear (``revealed``) or masked."""

    id: int
    user_id: int
    payment_type: str
    payment_provider: str | None
    name: str
    bank_name: str | None
    country_code: str | None
    account_name: str | None
    account_number: str | None
    account_number_last4: str | None
    details: dict[str, str] | None
    is_default: bool
    is_verified: bool
    is_active: bool
    revealed: bool
    created_at: datetime
    updated_at: datetime


def _check_type(payment_type: str) -> None:
    if payment_type not in PAYMENT_TYPES:
        raise ValidationError(
            f"payment_type must be one of {', '.join(PAYMENT_TYPES)}", field="payment_type"
        )


def _last4(number: str | None) -> str | None:
    if not number:
        return None
    digits = "".join(ch for ch in number if ch.isalnum())
    return digits[-4:] if len(digits) > 4 else None


def _seal(cipher: DetailsCipher, value: str | None, owner_id: int) -> str | None:
    return None if value is None else cipher.encrypt(value, owner_id=owner_id)


def _open(cipher: DetailsCipher, value: str | None, owner_id: int) -> str | None:
    return None if value is None else cipher.decrypt(value, owner_id=owner_id)


def add_method(
    session: Session, *, user: User, data: MethodInput, cipher: DetailsCipher
) -> PaymentMethod:
    _check_type(data.payment_type)
    count = session.scalar(
        select(func.count()).select_from(PaymentMethod).where(PaymentMethod.user_id == user.id)
    )
    if (count or 0) >= MAX_METHODS:
        raise ValidationError(
            f"at most {MAX_METHODS} payment methods per user", code="too_many_payment_methods"
        )
    pm = PaymentMethod(
        user_id=user.id,
        payment_type=data.payment_type,
        payment_provider=data.payment_provider,
        name=data.name,
        bank_name=data.bank_name,
        country_code=data.country_code.upper() if data.country_code else None,
        account_name=_seal(cipher, data.account_name, user.id),
        account_number=_seal(cipher, data.account_number, user.id),
        account_number_last4=_last4(data.account_number),
        payment_details=_seal(cipher, json.dumps(data.details, sort_keys=True), user.id)
        if data.details
        else None,
        is_default=False,
        is_verified=False,
        is_active=True,
    )
    session.add(pm)
    session.flush()
    if data.is_default or not count:
        _make_default(session, pm)
    return pm


def _make_default(session: Session, pm: PaymentMethod) -> None:
    session.execute(
        update(PaymentMethod)
        .where(PaymentMethod.user_id == pm.user_id, PaymentMethod.id != pm.id)
        .values(is_default=False)
    )
    pm.is_default = True


def get_own(session: Session, *, user: User, method_id: int) -> PaymentMethod:
    """One of the caller's methods; another user's id is a 404 (ids leak nothing)."""
    pm = session.get(PaymentMethod, method_id)
    if pm is None or pm.user_id != user.id:
        raise NotFoundError(f"no payment method {method_id}", payment_method_id=method_id)
    return pm


def update_method(
    session: Session,
    *,
    user: User,
    method_id: int,
    changes: dict[str, Any],
    cipher: DetailsCipher,
) -> PaymentMethod:
    """Change the given fields only (``changes`` holds what the client sent)."""
    pm = get_own(session, user=user, method_id=method_id)
    if changes.get("is_active") is False and pm.is_active:
        _not_in_use(session, pm)
    if "payment_type" in changes:
        _check_type(changes["payment_type"])
        pm.payment_type = changes["payment_type"]
    for plain in ("payment_provider", "name", "bank_name", "is_active"):
        if plain in changes:
            setattr(pm, plain, changes[plain])
    if "country_code" in changes:
        cc = changes["country_code"]
        pm.country_code = cc.upper() if cc else None
    if "account_name" in changes:
        pm.account_name = _seal(cipher, changes["account_name"], user.id)
    if "account_number" in changes:
        pm.account_number = _seal(cipher, changes["account_number"], user.id)
        pm.account_number_last4 = _last4(changes["account_number"])
    if "details" in changes:
        d = changes["details"] or {}
        pm.payment_details = _seal(cipher, json.dumps(d, sort_keys=True), user.id) if d else None
    if changes.get("is_default") is True:
        _make_default(session, pm)
    elif changes.get("is_default") is False:
        pm.is_default = False
    session.flush()
    return pm


def _not_in_use(session: Session, pm: PaymentMethod) -> None:
    """Refuse to take away a method the counterparty of one of the owner's
    active trades may be paying to (or checking the payment from)."""
    trades = session.scalars(
        select(P2POrder).where(
            P2POrder.kind == "trade",
            (P2POrder.seller_id == pm.user_id) | (P2POrder.buyer_id == pm.user_id),
            P2POrder.status.in_(sorted(ACTIVE_TRADE)),
        )
    ).all()
    for t in trades:
        wanted = {m.strip().lower() for m in (t.payment_methods or []) if m.strip()}
        if not wanted or _matches(pm, wanted):
            raise EscrowStateError(
                f"payment method {pm.id} is used by active trade {t.id}; "
                "change it once the trade has ended",
                code="payment_method_in_use",
                order_id=t.id,
            )


def delete_method(session: Session, *, user: User, method_id: int) -> None:
    """Gone for good: the row and its ciphertexts (trades keep only the
    method's name in ``payment_methods``). Not while an active trade uses it."""
    pm = get_own(session, user=user, method_id=method_id)
    _not_in_use(session, pm)
    session.delete(pm)
    session.flush()


def list_methods(session: Session, *, user: User) -> list[PaymentMethod]:
    return list(
        session.scalars(
            select(PaymentMethod).where(PaymentMethod.user_id == user.id).order_by(PaymentMethod.id)
        )
    )


def view(pm: PaymentMethod, *, cipher: DetailsCipher | None, reveal: bool) -> MethodView:
    """The method in clear (``reveal``, needs the cipher) or masked (only the
    last four characters of the account number)."""
    name = number = None
    details: dict[str, str] | None = None
    if reveal:
        assert cipher is not None
        name = _open(cipher, pm.account_name, pm.user_id)
        number = _open(cipher, pm.account_number, pm.user_id)
        raw = _open(cipher, pm.payment_details, pm.user_id)
        details = json.loads(raw) if raw else {}
    return MethodView(
        id=pm.id,
        user_id=pm.user_id,
        payment_type=pm.payment_type,
        payment_provider=pm.payment_provider,
        name=pm.name,
        bank_name=pm.bank_name,
        country_code=pm.country_code,
        account_name=name,
        account_number=number,
        account_number_last4=pm.account_number_last4,
        details=details,
        is_default=pm.is_default,
        is_verified=pm.is_verified,
        is_active=pm.is_active,
        revealed=reveal,
        created_at=pm.created_at,
        updated_at=pm.updated_at,
    )


def _matches(pm: PaymentMethod, wanted: set[str]) -> bool:
    names = {pm.payment_type, pm.name, pm.payment_provider or ""}
    return any(n.strip().lower() in wanted for n in names if n)


def counterparty_methods(
    session: Session, *, trade: P2POrder, viewer: User
) -> tuple[int, list[PaymentMethod]]:
    """The counterparty's active methods that fit the trade (their type, name
    or provider is one of the trade's payment methods; all active methods if
    the trade names none). Only a party of an active trade gets them."""
    if viewer.id not in (trade.seller_id, trade.buyer_id):
        raise NotFoundError(f"no order {trade.id}", order_id=trade.id)
    if trade.status not in ACTIVE_TRADE:
        raise PermissionDeniedError(
            f"payment details are shown only while a trade is active (it is {trade.status})",
            code="trade_not_active",
            state=trade.status,
        )
    other = trade.buyer_id if viewer.id == trade.seller_id else trade.seller_id
    assert other is not None
    wanted = {m.strip().lower() for m in (trade.payment_methods or []) if m.strip()}
    if trade.payment_method:
        wanted.add(trade.payment_method.strip().lower())
    rows = session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.user_id == other, PaymentMethod.is_active.is_(True))
        .order_by(PaymentMethod.is_default.desc(), PaymentMethod.id)
    ).all()
    return other, [pm for pm in rows if not wanted or _matches(pm, wanted)]
