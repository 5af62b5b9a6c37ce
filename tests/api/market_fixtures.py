"""Fixtures and helpers of the market tests: an admin on the ``api`` node,
documents with real magic bytes, a price file the node's file source reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from node.db.session import transaction
from node.market.service import refresh_prices
from node.trades import create_user
from tests.api.conftest import Api

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


@pytest.fixture
def market_api(api: Api) -> Api:
    """The ``api`` node plus an ``admin`` user."""
    with transaction(api.node.sessions) as session:
        _u, api.tokens["admin"] = create_user(session, username="admin", role="admin")
    return api


def user_id(api: Api, who: str) -> int:
    from sqlalchemy import select

    from node.db.models import User

    with transaction(api.node.sessions) as session:
        return int(session.scalar(select(User.id).where(User.username == who)) or 0)


def write_prices(api: Api, quotes: list[dict[str, Any]], *, refresh: bool = True) -> None:
    """Write the file the node's default price source reads, then refresh."""
    path = Path(api.node.settings.data_dir) / "prices.json"
    path.write_text(json.dumps({"quotes": quotes}), encoding="utf-8")
    if refresh:
        refresh_prices(api.node)


def quote(base: str, quote_: str, price: str, at: datetime | None = None) -> dict[str, Any]:
    return {
        "base": base,
        "quote": quote_,
        "price": price,
        "observed_at": (at or datetime.now(UTC)).isoformat(),
    }


def upload(api: Api, who: str, doc_type: str, data: bytes, ctype: str) -> Any:
    return api.post(
        "/api/p2p-crypto/verification/submit",
        who,
        data={"document_type": doc_type},
        files={"file": ("doc", data, ctype)},
    )


def verify(api: Api, who: str, level: str) -> None:
    """Take ``who`` to ``level`` the way a user and an admin do."""
    r = api.post("/api/p2p-crypto/verification/initiate", who, json={"level": level})
    assert r.status_code == 200, r.text
    for doc_type in r.json()["missing_documents"]:
        assert upload(api, who, doc_type, PDF, "application/pdf").status_code == 201
    r = api.post(
        f"/api/p2p-crypto/admin/verifications/{user_id(api, who)}/review",
        "admin",
        json={"decision": "approve"},
    )
    assert r.status_code == 200, r.text
