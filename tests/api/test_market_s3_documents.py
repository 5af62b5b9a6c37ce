"""Verification documents in an S3-compatible bucket: a node configured with
``market.storage_url = "s3://bucket/prefix"`` (and the ``market.s3_*``
settings) pointing at a real S3 HTTP server (moto's) stores an uploaded
document there, not on disk, and the admin document endpoint reads it back."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from node.db.models_market import VerificationDocument
from node.db.session import transaction
from tests.api.conftest import Api
from tests.api.market_fixtures import *  # noqa: F403
from tests.api.market_fixtures import PDF, PNG, upload
from tests.functional.s3_fixtures import *  # noqa: F403
from tests.functional.s3_fixtures import S3Server

QUEUE = "/api/p2p-crypto/admin/verifications"


def test_documents_go_to_s3_and_come_back(
    market_api: Api, s3_server: S3Server, s3_bucket: str
) -> None:
    api = market_api
    market = api.node.settings.market
    for name, value in s3_server.market_settings(s3_bucket, "kyc").items():
        setattr(market, name, SecretStr(value) if name == "s3_secret_access_key" else value)

    r = api.post("/api/p2p-crypto/verification/initiate", "buyer", json={"level": "basic"})
    assert r.status_code == 200, r.text
    # a bad upload is still refused before it reaches the bucket
    r = upload(api, "buyer", "identity", PNG, "application/pdf")
    assert r.status_code == 422 and r.json()["code"] == "upload_type_mismatch"
    r = upload(api, "buyer", "identity", PDF, "application/pdf")
    assert r.status_code == 201, r.text

    with transaction(api.node.sessions) as s:
        keys = s.scalars(select(VerificationDocument.storage_key)).all()
    assert len(keys) == 1
    listing = s3_server.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert [o["Key"] for o in listing] == [f"kyc/{keys[0]}"]
    assert not (Path(api.node.settings.data_dir) / "files").exists()  # nothing on disk

    queue = api.get(QUEUE, "admin").json()
    doc_id = queue[0]["documents"][-1]["id"]
    r = api.get(f"/api/p2p-crypto/admin/verification-documents/{doc_id}", "admin")
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"

    # the object gone from the bucket: a 404 problem, not a 500
    s3_server.client().delete_object(Bucket=s3_bucket, Key=f"kyc/{keys[0]}")
    r = api.get(f"/api/p2p-crypto/admin/verification-documents/{doc_id}", "admin")
    assert r.status_code == 404 and r.json()["code"] == "file_not_found"
