"""Verification on a real node: a user asks for a level, uploads the
documents it needs (type sniffed from the bytes, size checked, kept 0600 in
the file store), an admin reviews them; only admins see the queue and the
files, and every bad call is a 4xx problem."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import select

from node.db.models_market import VerificationDocument
from node.db.session import transaction
from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.market_fixtures import JPEG, PDF, PNG, upload, user_id

PROBLEM = "application/problem+json"
STATUS = "/api/p2p-crypto/verification-status"
INITIATE = "/api/p2p-crypto/verification/initiate"
QUEUE = "/api/p2p-crypto/admin/verifications"


def test_request_upload_review_approve(market_api: Api) -> None:
    api = market_api
    st = api.get(STATUS, "buyer").json()
    assert st["verification_level"] == "unverified" and st["kyc_status"] == "none"
    assert st["is_verified"] is False and st["limits"]["per_trade"] is not None

    r = api.post(INITIATE, "buyer", json={"level": "verified"})
    assert r.status_code == 200, r.text
    assert r.json()["kyc_status"] == "pending"
    assert r.json()["missing_documents"] == ["identity", "proof_of_address"]

    r = upload(api, "buyer", "identity", PNG, "image/png")
    assert r.status_code == 201, r.text
    assert r.json()["missing_documents"] == ["proof_of_address"]
    # a second identity document replaces the first
    upload(api, "buyer", "identity", JPEG, "image/jpeg")
    r = upload(api, "buyer", "proof_of_address", PDF, "application/pdf")
    st = r.json()
    assert st["kyc_status"] == "under_review" and st["missing_documents"] == []
    assert [(d["document_type"], d["status"]) for d in st["documents"]] == [
        ("identity", "superseded"),
        ("identity", "submitted"),
        ("proof_of_address", "submitted"),
    ]
    assert st["documents"][1]["content_type"] == "image/jpeg"

    # stored 0600 under data_dir/files, never in the database
    with transaction(api.node.sessions) as s:
        keys = s.scalars(select(VerificationDocument.storage_key)).all()
    root = Path(api.node.settings.data_dir) / "files"
    for key in keys:
        assert stat.S_IMODE((root / key).stat().st_mode) == 0o600
    assert (root / keys[2]).read_bytes() == PDF

    # under review: no new request, no more uploads
    r = api.post(INITIATE, "buyer", json={"level": "trusted"})
    assert r.status_code == 409 and r.json()["code"] == "review_in_progress"
    r = upload(api, "buyer", "selfie", PNG, "image/png")
    assert r.status_code == 409 and r.json()["code"] == "no_pending_verification"

    queue = api.get(QUEUE, "admin").json()
    assert [(q["username"], q["requested_level"]) for q in queue] == [("buyer", "verified")]
    doc_id = queue[0]["documents"][-1]["id"]
    r = api.get(f"/api/p2p-crypto/admin/verification-documents/{doc_id}", "admin")
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"

    buyer = user_id(api, "buyer")
    r = api.post(f"{QUEUE}/{buyer}/review", "admin", json={"decision": "approve", "notes": "ok"})
    assert r.status_code == 200, r.text
    st = api.get(STATUS, "buyer").json()
    assert st["verification_level"] == "verified" and st["kyc_status"] == "approved"
    assert st["is_verified"] is True and st["limits"]["per_trade"] == "50000"
    assert api.get(QUEUE, "admin").json() == []
    assert api.post(INITIATE, "buyer", json={"level": "basic"}).json()["code"] == (
        "already_at_level"
    )

    from node.db.models_accounts import AuditLog

    with transaction(api.node.sessions) as s:
        audit = [(a.action, a.subject) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert ("verification_document.viewed", f"user:{buyer}") in audit
    assert ("verification.approved", f"user:{buyer}") in audit


def test_rejection_lets_the_user_start_again(market_api: Api) -> None:
    api = market_api
    api.post(INITIATE, "seller", json={"level": "basic"})
    assert upload(api, "seller", "identity", PDF, "application/pdf").status_code == 201
    seller = user_id(api, "seller")
    r = api.post(
        f"{QUEUE}/{seller}/review", "admin", json={"decision": "reject", "notes": "blurry"}
    )
    assert r.status_code == 200
    st = api.get(STATUS, "seller").json()
    assert st["kyc_status"] == "rejected" and st["verification_level"] == "unverified"
    assert st["review_notes"] == "blurry" and st["documents"][0]["status"] == "rejected"
    # reviewing twice finds nothing under review
    r = api.post(f"{QUEUE}/{seller}/review", "admin", json={"decision": "approve"})
    assert r.status_code == 404 and r.json()["code"] == "no_review"
    st = api.post(INITIATE, "seller", json={"level": "basic"}).json()
    assert st["kyc_status"] == "pending" and st["missing_documents"] == ["identity"]


def test_bad_uploads_are_422_problems(market_api: Api) -> None:
    api = market_api
    r = upload(api, "buyer", "identity", PDF, "application/pdf")
    assert r.status_code == 409 and r.json()["code"] == "no_pending_verification"
    api.post(INITIATE, "buyer", json={"level": "basic"})
    big = PDF + b"0" * api.node.settings.market.upload_max_bytes
    for data, ctype, doc_type, code in (
        (b"<svg onload=alert(1)>", "image/png", "identity", "upload_type_not_allowed"),
        (b"MZ\x90\x00 an exe", "application/pdf", "identity", "upload_type_not_allowed"),
        (PNG, "application/pdf", "identity", "upload_type_mismatch"),
        (b"", "application/pdf", "identity", "upload_empty"),
        (big, "application/pdf", "identity", "upload_too_large"),
        (PDF, "application/pdf", "passport_of_mars", "invalid_input"),
    ):
        r = upload(api, "buyer", doc_type, data, ctype)
        assert r.status_code == 422, (code, r.text)
        assert r.headers["content-type"] == PROBLEM and r.json()["code"] == code
    r = api.post("/api/p2p-crypto/verification/submit", "buyer", data={"document_type": "x"})
    assert r.status_code == 422
    assert api.post(INITIATE, "buyer", json={"level": "god"}).status_code == 422
    assert api.get(STATUS, "buyer").json()["documents"] == []

    api.node.settings.market.max_documents_per_user = 2
    assert upload(api, "buyer", "identity", PDF, "application/pdf").status_code == 201
    r = api.post(INITIATE, "seller", json={"level": "verified"})
    for _ in range(2):
        assert upload(api, "seller", "identity", PNG, "image/png").status_code == 201
    r = upload(api, "seller", "identity", PNG, "image/png")
    assert r.status_code == 409 and r.json()["code"] == "too_many_documents"


def test_admin_endpoints_refuse_everyone_else(market_api: Api) -> None:
    api = market_api
    api.post(INITIATE, "buyer", json={"level": "basic"})
    upload(api, "buyer", "identity", PDF, "application/pdf")
    doc = api.get(STATUS, "buyer").json()["documents"][0]["id"]
    buyer = user_id(api, "buyer")
    calls = [
        ("get", QUEUE, None),
        ("post", f"{QUEUE}/{buyer}/review", {"decision": "approve"}),
        ("get", f"/api/p2p-crypto/admin/verification-documents/{doc}", None),
    ]
    for method, url, body in calls:
        for who, want in (("buyer", 403), ("arbitrator", 403), (None, 401)):
            kw = {"json": body} if body is not None else {}
            r = getattr(api, method)(url, who, **kw)
            assert r.status_code == want, (url, who, r.text)
            assert r.headers["content-type"] == PROBLEM
    assert api.get(STATUS).status_code == 401
    assert api.post(INITIATE, json={"level": "basic"}).status_code == 401
    assert api.get(STATUS, "buyer").json()["kyc_status"] == "under_review"
    r = api.get("/api/p2p-crypto/admin/verification-documents/999999", "admin")
    assert r.status_code == 404


def test_admin_sets_a_level_directly_and_it_is_audited(market_api: Api) -> None:
    api = market_api
    buyer = user_id(api, "buyer")
    url = f"/api/p2p-crypto/admin/users/{buyer}/verification-level"
    r = api.post(url, "admin", json={"level": "verified", "notes": "in person"})
    assert r.status_code == 200, r.text
    st = api.get(STATUS, "buyer").json()
    assert st["verification_level"] == "verified" and st["limits"]["per_trade"] == "50000"
    # revoked while a new request is under review: the request is closed
    api.post(INITIATE, "buyer", json={"level": "trusted"})
    for doc_type in ("identity", "proof_of_address", "selfie"):
        upload(api, "buyer", doc_type, PDF, "application/pdf")
    assert api.get(QUEUE, "admin").json()[0]["requested_level"] == "trusted"
    r = api.post(url, "admin", json={"level": "unverified", "notes": "documents forged"})
    assert r.status_code == 200
    st = api.get(STATUS, "buyer").json()
    assert (st["verification_level"], st["kyc_status"]) == ("unverified", "none")
    assert {d["status"] for d in st["documents"]} == {"rejected"}
    assert api.get(QUEUE, "admin").json() == []
    for who, want in (("buyer", 403), ("arbitrator", 403), (None, 401)):
        assert api.post(url, who, json={"level": "trusted"}).status_code == want
    assert api.post(url, "admin", json={"level": "gold"}).status_code == 422
    admin = user_id(api, "admin")
    r = api.post(
        f"/api/p2p-crypto/admin/users/{admin}/verification-level",
        "admin",
        json={"level": "trusted"},
    )
    assert r.status_code == 409 and r.json()["code"] == "own_verification"
    r = api.post(
        "/api/p2p-crypto/admin/users/999999/verification-level", "admin", json={"level": "basic"}
    )
    assert r.status_code == 404
    from node.db.models_accounts import AuditLog

    with transaction(api.node.sessions) as s:
        levels = [
            a.details["level"]
            for a in s.scalars(
                select(AuditLog)
                .where(AuditLog.action == "verification.level_set")
                .order_by(AuditLog.id)
            )
        ]
    assert levels == ["verified", "unverified"]
