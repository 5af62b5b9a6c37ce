"""Dispute evidence and assignment on a real node (anvil + PostgreSQL): a new
dispute goes to the least-loaded arbitrator; buyer and seller bring text and
files (type checked by their bytes); the seller's answer moves the case to
awaiting the ruling; only the parties, the assigned arbitrator and admins read
evidence and download files (the parties do not see the arbitrator's notes);
admins reassign, and only the assigned arbitrator may rule."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.disputes_fixtures import *  # noqa: F403
from tests.api.disputes_fixtures import People, opened_dispute, user_id

P = "/api/p2p-crypto/disputes"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PROBLEM = "application/problem+json"


def test_assignment_evidence_and_who_reads_it(api: Api, people: People) -> None:
    _t, d = opened_dispute(api)
    arb1 = user_id(api, "arbitrator")
    detail = api.get(f"{P}/{d}", "buyer").json()
    # the keyless arbitrator and arb2 both had no open dispute: the lower id wins
    assert detail["dispute"]["arbitrator_user_id"] == arb1
    case = detail["case"]
    assert case["stage"] == "awaiting_response"
    assert case["respondent_user_id"] == user_id(api, "seller")
    assert case["response_due_at"] < case["ruling_due_at"]

    r = api.post(f"{P}/{d}/evidence", "buyer", json={"text": "no transfer arrived"})
    assert r.status_code == 201, r.text
    assert r.json()["author_role"] == "buyer" and r.json()["kind"] == "text"
    # the buyer is the initiator: still waiting for the seller's answer
    assert api.get(f"{P}/{d}", "seller").json()["case"]["stage"] == "awaiting_response"

    r = api.post(f"{P}/{d}/evidence/files", "seller", data={"note": "bank receipt"},
                 files={"file": ("receipt.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    file_item = r.json()
    assert file_item["kind"] == "file" and file_item["size_bytes"] == len(PNG)
    case = api.get(f"{P}/{d}", "seller").json()["case"]
    assert case["stage"] == "awaiting_ruling" and case["responded_at"] is not None

    # a file whose bytes are not what it claims, an empty one: 422 problems
    r = api.post(f"{P}/{d}/evidence/files", "seller",
                 files={"file": ("x.png", b"MZ not a png", "image/png")})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] in ("upload_type_not_allowed", "upload_type_mismatch")
    r = api.post(f"{P}/{d}/evidence/files", "seller", files={"file": ("x.png", b"", "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "upload_empty"
    r = api.post(f"{P}/{d}/evidence", "buyer", json={"text": ""})
    assert r.status_code == 422

    # the assigned arbitrator adds a note, which the parties do not see
    r = api.post(f"{P}/{d}/evidence", "arbitrator", json={"text": "asked both for statements"})
    assert r.status_code == 201 and r.json()["kind"] == "note"
    for who in ("arbitrator", "admin"):
        kinds = [e["kind"] for e in api.get(f"{P}/{d}/evidence", who).json()]
        assert kinds == ["text", "file", "note"], who
    for who in ("buyer", "seller"):
        kinds = [e["kind"] for e in api.get(f"{P}/{d}/evidence", who).json()]
        assert kinds == ["text", "file"], who

    url = file_item["download_url"]
    got = api.get(url, "buyer")
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"

    # outsiders and arbitrators not assigned see nothing, and add nothing
    for who in ("outsider", "arb2"):
        assert api.get(f"{P}/{d}/evidence", who).status_code == 404, who
        assert api.get(url, who).status_code == 404, who
        assert api.get(f"{P}/{d}", who).status_code == 404, who
        r = api.post(f"{P}/{d}/evidence", who, json={"text": "me too"})
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, who
    assert api.get(f"{P}/{d}/evidence/99999/file", "buyer").status_code == 404
    assert api.get(f"{P}/424242/evidence", "buyer").status_code == 404


def test_admins_reassign_and_only_the_assignee_rules(api: Api, people: People) -> None:
    _t, d = opened_dispute(api)
    body = {"arbitrator_user_id": people.arb2_id}
    # only admins reassign; not to a trader, not to a party
    r = api.post(f"{P}/{d}/assign", "arbitrator", json=body)
    assert r.status_code == 403 and r.json()["code"] == "admins_only"
    r = api.post(f"{P}/{d}/assign", "admin", json={"arbitrator_user_id": user_id(api, "buyer")})
    assert r.status_code == 422
    r = api.post(f"{P}/{d}/assign", "admin", json={"arbitrator_user_id": 2**31})
    assert r.status_code == 422
    r = api.post(f"{P}/{d}/assign", "admin", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["dispute"]["arbitrator_user_id"] == people.arb2_id
    assert out["case"]["assigned_at"] is not None
    # the former arbitrator no longer sees the evidence nor rules
    assert api.get(f"{P}/{d}/evidence", "arbitrator").status_code == 404
    assert api.get(f"{P}/{d}/evidence", "arb2").status_code == 200
    r = api.post(f"{P}/{d}/resolve", "arbitrator", json={"buyer_bps": 5000})
    assert r.status_code == 403 and r.json()["code"] == "not_assigned"
    r = api.post(f"{P}/{d}/ruling-payload", "arbitrator", json={"buyer_bps": 5000})
    assert r.status_code == 403
