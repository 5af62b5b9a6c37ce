"""Request and response bodies. Amounts are integers in base units, sent as
decimal strings (JSON numbers lose precision above 2**53)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BaseUnitsStr = str


def _base_units(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("must be an integer amount in base units")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and v.isdigit() and len(v) <= 78:
        n = int(v)
    else:
        raise ValueError("must be an integer amount in base units (a string of digits)")
    if n <= 0 or n >= 2**256:
        raise ValueError("must be positive and below 2**256")
    return n


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CurrencyPublic(BaseModel):
    id: int
    name: str
    symbol: str
    slug: str
    chain: str
    network: str
    decimals: int
    contract_address: str | None
    price: Decimal | None
    # the fiat currency of ``price`` (the price index's, market.limits_fiat)
    price_currency: str | None = None
    is_active: bool


class AdCreate(Strict):
    crypto_currency_id: int = Field(ge=1, le=2**31 - 1)
    amount: int | str
    min_amount: int | str | None = None
    max_amount: int | str | None = None
    # fixed-price ads: the price; margin ads leave it out (priced from the index)
    price_per_unit: Decimal | None = Field(None, gt=0, max_digits=28, decimal_places=8)
    price_type: Literal["fixed", "margin"] = "fixed"
    # margin ads: basis points over (negative: under) the price index
    margin_bps: int | None = Field(None, ge=-9999, le=100_000)
    fiat_currency: str = Field(min_length=3, max_length=8, pattern=r"^[A-Za-z]{3,8}$")
    payment_methods: list[str] = Field(min_length=1, max_length=10)
    seller_address: str = Field(min_length=1, max_length=128)
    terms_and_conditions: str | None = Field(None, max_length=4000)
    additional_notes: str | None = Field(None, max_length=4000)
    # Bitcoin: the seller's own public keys (a plain pubkey or
    # "[fingerprint/path]xpub/child"): the multisig key and the refund key of
    # the timelock branch. Not used on other chains.
    seller_pubkey: str | None = Field(None, min_length=1, max_length=300)
    seller_refund_pubkey: str | None = Field(None, min_length=1, max_length=300)

    @field_validator("amount", "min_amount", "max_amount")
    @classmethod
    def _units(cls, v: Any) -> Any:
        return None if v is None else _base_units(v)

    @field_validator("payment_methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for m in v:
            if not 1 <= len(m) <= 64:
                raise ValueError("each payment method is 1 to 64 characters")
        return v


class MatchCreate(Strict):
    amount: int | str
    buyer_address: str = Field(min_length=1, max_length=128)
    # Bitcoin: the buyer's own public key (plain or xpub with origin).
    buyer_pubkey: str | None = Field(None, min_length=1, max_length=300)

    @field_validator("amount")
    @classmethod
    def _units(cls, v: Any) -> int:
        return _base_units(v)


class SignedAction(Strict):
    """Either nothing (the response says what to sign), or the party's
    signature over the payload the node returned earlier."""

    signature: str | None = Field(None, max_length=200)
    expiry: int | None = Field(None, ge=0, le=2**63 - 1)
    # Bitcoin: the signed PSBT (base64) instead of a signature.
    psbt: str | None = Field(None, min_length=1, max_length=400_000)


class DisputeCreate(Strict):
    dispute_type: str = Field("other", min_length=1, max_length=32)
    description: str = Field(min_length=1, max_length=8000)
    evidence: list[str] = Field(default_factory=list, max_length=20)
    signature: str | None = Field(None, max_length=200)
    expiry: int | None = Field(None, ge=0, le=2**63 - 1)


class Ruling(Strict):
    buyer_bps: int = Field(ge=0, le=10_000)
    resolution_notes: str = Field("", max_length=8000)
    signature: str | None = Field(None, max_length=200)
    expiry: int | None = Field(None, ge=0, le=2**63 - 1)


class EscrowPublic(BaseModel):
    chain: str
    network: str
    contract_address: str | None
    escrow_id: str
    ref: str
    token_address: str | None
    amount: str
    funded_amount: str
    seller_address: str
    buyer_address: str
    arbitrator_address: str
    fee_bps: int
    status: str
    payment_deadline: int | None
    deadline: int
    funded_tx: str | None
    payout_tx: str | None
    buyer_bps: int | None


class OrderPublic(BaseModel):
    id: int
    kind: Literal["ad", "trade"]
    parent_id: int | None
    seller_id: int
    buyer_id: int | None
    crypto_currency_id: int
    currency_symbol: str
    order_type: str
    amount: str
    min_amount: str | None
    max_amount: str | None
    remaining_amount: str | None
    price_per_unit: Decimal
    total_amount: Decimal | None
    fiat_currency: str
    payment_method: str | None
    payment_methods: list[str]
    status: str
    seller_address: str | None
    buyer_address: str | None
    matched_at: datetime | None
    paid_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    terms_and_conditions: str | None
    crypto_transaction_id: str | None
    created_at: datetime
    escrow: EscrowPublic | None = None
    # fixed | margin; a margin ad's price_per_unit follows the index, a
    # trade's is the one computed when it opened
    price_type: str = "fixed"
    margin_bps: int | None = None


class Page(BaseModel):
    data: list[OrderPublic]
    total: int = Field(description=(
        "matching rows, counted up to 1,000 past this page: a total equal to "
        "offset + limit + 1000 means at least that many"))
    limit: int
    offset: int


class TradeOpened(BaseModel):
    order: OrderPublic
    funding: dict[str, Any]


class SignPayload(BaseModel):
    """What to sign: submit the signature to the same endpoint with ``expiry``."""

    status: Literal["signature_required"] = "signature_required"
    action: str
    payload: dict[str, Any]
    digest: str
    expiry: int
    nonce: int


class SubmittedPublic(BaseModel):
    status: str
    action: str
    kind: str
    ref: str


class DisputePublic(BaseModel):
    id: int
    p2p_order_id: int
    initiator_user_id: int
    arbitrator_user_id: int | None
    dispute_type: str
    description: str
    status: str
    evidence: list[Any]
    buyer_bps: int | None
    resolution_notes: str | None
    resolved_at: datetime | None
    created_at: datetime


class DisputeOpened(BaseModel):
    dispute: DisputePublic
    chain: SignPayload | SubmittedPublic | None


class RulingResult(BaseModel):
    dispute: DisputePublic
    submitted: SubmittedPublic
