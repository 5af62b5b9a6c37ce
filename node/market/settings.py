"""Settings of this slice: the ``[market]`` block of escrowd.toml, ESCROWD_MARKET__* variables."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from node.market.limits import LEVELS
from node.settings_base import Section


class LevelLimit(Section):
    """Fiat limits (in ``limits_fiat``) of one verification level; None = no limit."""

    per_trade: Decimal | None = Field(None, gt=0)
    per_24h: Decimal | None = Field(None, gt=0)


def default_limits() -> dict[str, LevelLimit]:
    return {
        "unverified": LevelLimit(per_trade=Decimal(500), per_24h=Decimal(1000)),
        "basic": LevelLimit(per_trade=Decimal(5000), per_24h=Decimal(10_000)),
        "verified": LevelLimit(per_trade=Decimal(50_000), per_24h=Decimal(100_000)),
        "trusted": LevelLimit(per_trade=Decimal(250_000), per_24h=None),
    }


def _default_required() -> dict[str, list[str]]:
    return {
        "basic": ["identity"],
        "verified": ["identity", "proof_of_address"],
        "trusted": ["identity", "proof_of_address", "selfie"],
    }


class PriceSourceSettings(Section):
    """One price source. ``file``: a JSON or CSV file of quotes (``path``;
    default ``data_dir/prices.json``). ``static``: fixed quotes from the
    configuration (``prices``: {"ETH/EUR": "3150.5"}), stamped when read, so
    they never go stale: for local development only."""

    kind: Literal["file", "static"] = "file"
    name: str | None = Field(None, min_length=1, max_length=64)
    path: Path | None = None
    prices: dict[str, Decimal] = Field(default_factory=dict)


class MarketSettings(Section):
    # Where uploaded files (verification documents, dispute evidence) live:
    # None = a directory ``files/`` under ``data_dir``; ``file:///abs/path`` or
    # a plain path = that directory; ``s3://bucket/prefix`` = that bucket (and
    # key prefix) of an S3-compatible store (AWS S3, MinIO, Ceph, R2...).
    storage_url: str | None = None
    # S3 only. Endpoint of a non-AWS store (e.g. http://minio:9000); region;
    # credentials (None: boto3's standard chain: AWS_* variables, shared
    # config files, instance roles); "path" addressing for stores without
    # virtual-host buckets; server-side encryption asked for on each upload
    # ("AES256", or "aws:kms" with an optional key id).
    s3_endpoint_url: str | None = Field(None, pattern=r"^https?://\S+$")
    s3_region: str | None = Field(None, pattern=r"^[a-z0-9-]{1,32}$")
    s3_access_key_id: str | None = Field(None, min_length=1, max_length=256)
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    s3_kms_key_id: str | None = Field(None, min_length=1, max_length=2048)

    # Payment details are encrypted at rest (AES-256-GCM) with this key
    # (base64url of 32 bytes). Required in production; dev mode generates one
    # under data_dir (0600). Old keys still decrypt (rotation).
    payment_key: SecretStr | None = None
    payment_old_keys: list[SecretStr] = Field(default_factory=list)

    # Verification: documents each level needs, upload checks.
    required_documents: dict[str, list[str]] = Field(default_factory=_default_required)
    document_types: list[str] = Field(
        default_factory=lambda: ["identity", "proof_of_address", "selfie"]
    )
    upload_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # uploads a user may ever store (replaced ones count: bounds the disk a user can fill)
    max_documents_per_user: int = Field(30, ge=1, le=10_000)
    upload_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/png", "image/jpeg"]
    )

    # Trade limits per verification level, in limits_fiat, checked for both
    # parties when a trade opens. None: on in production, off in dev mode.
    trade_limits_enabled: bool | None = None
    limits_fiat: str = Field("USD", pattern=r"^[A-Z]{3,8}$")
    trade_limits: dict[str, LevelLimit] = Field(default_factory=default_limits)
    # A trade in another fiat than limits_fiat with no fresh index to convert
    # it: counted at face value, or refused (503 limit_value_unknown).
    limits_unpriced: Literal["face_value", "refuse"] = "face_value"

    # Price index: sources, refresh period, how old an index may be.
    price_sources: list[PriceSourceSettings] = Field(
        default_factory=lambda: [PriceSourceSettings()]
    )
    price_refresh_s: int = Field(30, ge=1, le=86_400)
    price_max_age_s: int = Field(300, ge=1, le=7 * 86_400)
    # Margin ads: bounds of the margin over the index, in basis points.
    margin_min_bps: int = Field(-5000, ge=-9999, le=0)
    margin_max_bps: int = Field(10_000, ge=0, le=100_000)

    # Reputation: recomputed as trades end; this job is the backstop.
    reputation_refresh_s: int = Field(300, ge=5, le=86_400)
    trusted_seller_min_trades: int = Field(20, ge=1)
    trusted_seller_min_completion: Decimal = Field(Decimal("0.95"), ge=0, le=1)
    trusted_seller_max_disputes_lost: int = Field(0, ge=0)

    @field_validator("trade_limits")
    @classmethod
    def _levels(cls, v: dict[str, LevelLimit]) -> dict[str, LevelLimit]:
        unknown = set(v) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown level(s) {sorted(unknown)}; levels: {', '.join(LEVELS)}")
        return v

    @model_validator(mode="after")
    def _documents(self) -> MarketSettings:
        unknown = set(self.required_documents) - set(LEVELS[1:])
        if unknown:
            raise ValueError(f"required_documents: unknown level(s) {sorted(unknown)}")
        for level, docs in self.required_documents.items():
            bad = set(docs) - set(self.document_types)
            if bad:
                raise ValueError(
                    f"required_documents.{level}: not in document_types: {sorted(bad)}"
                )
        return self
