"""Request and response bodies of the market endpoints (payment methods,
verification, reputation, prices). Same style as ``api.schemas``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas import Strict

Text64 = Field(min_length=1, max_length=64)


def _details(v: dict[str, str] | None) -> dict[str, str] | None:
    if v is None:
        return v
    if len(v) > 20:
        raise ValueError("at most 20 detail fields")
    for k, val in v.items():
        if not 1 <= len(k) <= 64 or len(val) > 500:
            raise ValueError("detail keys are 1-64 characters, values at most 500")
    return v


class PaymentMethodCreate(Strict):
    payment_type: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    payment_provider: str | None = Field(None, min_length=1, max_length=64)
    account_name: str | None = Field(None, min_length=1, max_length=200)
    account_number: str | None = Field(None, min_length=1, max_length=100)
    bank_name: str | None = Field(None, min_length=1, max_length=128)
    country_code: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")
    details: dict[str, str] = Field(default_factory=dict)
    is_default: bool = False

    _check_details = field_validator("details")(_details)


class PaymentMethodUpdate(Strict):
    """Only the fields sent change; null clears an optional field."""

    payment_type: str | None = Field(None, min_length=1, max_length=32)
    name: str | None = Field(None, min_length=1, max_length=64)
    payment_provider: str | None = Field(None, min_length=1, max_length=64)
    account_name: str | None = Field(None, min_length=1, max_length=200)
    account_number: str | None = Field(None, min_length=1, max_length=100)
    bank_name: str | None = Field(None, min_length=1, max_length=128)
    country_code: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")
    details: dict[str, str] | None = None
    is_default: bool | None = None
    is_active: bool | None = None

    _check_details = field_validator("details")(_details)


class PaymentMethodPublic(BaseModel):
    """``revealed``: account name, number and details in clear (the owner, or
    the counterparty of an active trade); otherwise they are null and only
    ``account_number_last4`` shows."""

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


class TradePaymentDetails(BaseModel):
    order_id: int
    counterparty_id: int
    payment_methods: list[PaymentMethodPublic]


class LimitPublic(BaseModel):
    fiat: str
    per_trade: Decimal | None
    per_24h: Decimal | None
    used_24h: Decimal
    enforced: bool


class DocumentPublic(BaseModel):
    id: int
    document_type: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    created_at: datetime


class VerificationStatus(BaseModel):
    user_id: int
    verification_level: Literal["unverified", "basic", "verified", "trusted"]
    is_verified: bool
    kyc_status: Literal["none", "pending", "under_review", "approved", "rejected"]
    requested_level: str | None
    required_documents: list[str]
    missing_documents: list[str]
    documents: list[DocumentPublic]
    submitted_at: datetime | None
    reviewed_at: datetime | None
    review_notes: str | None
    limits: LimitPublic


class VerificationInitiate(Strict):
    level: Literal["basic", "verified", "trusted"]


class VerificationReview(Strict):
    decision: Literal["approve", "reject"]
    notes: str = Field("", max_length=4000)


class LevelSet(Strict):
    level: Literal["unverified", "basic", "verified", "trusted"]
    notes: str = Field("", max_length=4000)


class ReviewQueueItem(BaseModel):
    user_id: int
    username: str
    verification_level: str
    requested_level: str | None
    submitted_at: datetime | None
    documents: list[DocumentPublic]


class ReputationPublic(BaseModel):
    user_id: int
    username: str
    verification_level: str
    total_trade_count: int
    completed_trade_count: int
    trade_completion_rate: Decimal | None
    trade_volume_30d: dict[str, str]
    trade_volume_90d: dict[str, str]
    disputes_opened: int
    disputes_won: int
    disputes_lost: int
    median_release_time_s: int | None
    reputation_score: Decimal
    trusted_seller: bool
    last_trade_at: datetime | None
    computed_at: datetime


class IndexPublic(BaseModel):
    base: str
    quote: str
    price: Decimal | None
    observed_at: datetime | None
    sources: list[str]
    stale: bool
    error: str | None
