"""S3FileStore over HTTP against a real S3 API server (moto's standalone
server): round trips under a key prefix, missing keys, unsafe keys refused
before any request, server-side encryption asked for, the store built from
settings, and a store that fails answering StorageUnavailableError."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from node.config import load_settings
from node.errors import ConfigError, NotFoundError, ValidationError
from node.storage import S3FileStore, StorageUnavailableError, make_store
from tests.functional.s3_fixtures import *  # noqa: F403
from tests.functional.s3_fixtures import S3Server

PDF = b"%PDF-1.4\n%%EOF\n"


def _objects(s3: S3Server, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_put_get_delete_round_trip_under_the_prefix(s3_server: S3Server, s3_bucket: str) -> None:
    store = S3FileStore(s3_server.client(), s3_bucket, "docs/v1")
    assert store.put("verification/7/a1.pdf", PDF, "application/pdf") == "verification/7/a1.pdf"
    assert store.get("verification/7/a1.pdf") == PDF
    assert _objects(s3_server, s3_bucket) == ["docs/v1/verification/7/a1.pdf"]
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="docs/v1/verification/7/a1.pdf")
    assert head["ContentType"] == "application/pdf"
    # replacing
    store.put("verification/7/a1.pdf", PDF + b"2", "application/pdf")
    assert store.get("verification/7/a1.pdf") == PDF + b"2"
    store.delete("verification/7/a1.pdf")
    assert _objects(s3_server, s3_bucket) == []
    with pytest.raises(NotFoundError) as err:
        store.get("verification/7/a1.pdf")
    assert err.value.code == "file_not_found"
    store.delete("verification/7/a1.pdf")  # deleting a missing key is not an error


def test_missing_key_is_not_found(s3_server: S3Server, s3_bucket: str) -> None:
    store = S3FileStore(s3_server.client(), s3_bucket)
    with pytest.raises(NotFoundError) as err:
        store.get("never/written.png")
    assert err.value.code == "file_not_found" and err.value.http_status == 404


@pytest.mark.parametrize("key", [
    "../escape.pdf", "a/../../b.pdf", "/abs/key.pdf", "a//b.pdf", "a\\b.pdf", ".hidden",
    "a/./b.pdf", "", "a/" + "x" * 600, "caf\u00e9.pdf", "a/b.pdf\x00",
])
def test_unsafe_keys_are_refused_before_any_request(
    s3_server: S3Server, s3_bucket: str, key: str
) -> None:
    store = S3FileStore(s3_server.client(), s3_bucket, "root")
    for op in (lambda: store.put(key, PDF, "application/pdf"), lambda: store.get(key),
               lambda: store.delete(key)):
        with pytest.raises(ValidationError) as err:
            op()
        assert err.value.code == "invalid_file_key"
    assert _objects(s3_server, s3_bucket) == []


def test_server_side_encryption_is_asked_for(s3_server: S3Server, s3_bucket: str) -> None:
    store = S3FileStore(s3_server.client(), s3_bucket, server_side_encryption="AES256")
    store.put("e/1.pdf", PDF, "application/pdf")
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="e/1.pdf")
    assert head["ServerSideEncryption"] == "AES256"
    plain = S3FileStore(s3_server.client(), s3_bucket)
    plain.put("e/2.pdf", PDF, "application/pdf")
    assert "ServerSideEncryption" not in s3_server.client().head_object(
        Bucket=s3_bucket, Key="e/2.pdf")


def test_make_store_reads_the_market_settings(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    settings = load_settings(mode="dev", data_dir=tmp_path,
                             market=s3_server.market_settings(s3_bucket, "uploads"))
    store = make_store(settings)
    assert isinstance(store, S3FileStore)
    store.put("k/1.png", b"\x89PNG\r\n\x1a\n", "image/png")
    assert _objects(s3_server, s3_bucket) == ["uploads/k/1.png"]
    assert not (tmp_path / "files").exists()


@pytest.mark.parametrize("market", [
    {"storage_url": "s3://"},
    {"storage_url": "s3://Bad_Bucket/x"},
    {"storage_url": "s3://ok-bucket/../up"},
    {"storage_url": "s3://ok-bucket/a?x=1"},
    {"storage_url": "s3://ok-bucket", "s3_access_key_id": "only-the-id"},
])
def test_bad_s3_settings_are_config_errors(tmp_path: Path, market: dict[str, str]) -> None:
    settings = load_settings(mode="dev", data_dir=tmp_path, market=market)
    with pytest.raises(ConfigError, match=r"market\.(storage_url|s3_)"):
        make_store(settings)


def test_store_failures_are_storage_unavailable(
    s3_server: S3Server, tmp_path: Path
) -> None:
    # a bucket that does not exist
    store = S3FileStore(s3_server.client(), "no-such-bucket-here")
    with pytest.raises(StorageUnavailableError) as err:
        store.put("a/b.pdf", PDF, "application/pdf")
    assert err.value.http_status == 503 and err.value.code == "storage_unavailable"
    # an endpoint nothing listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    market = s3_server.market_settings("some-bucket") | {
        "s3_endpoint_url": f"http://127.0.0.1:{port}"}
    down = make_store(load_settings(mode="dev", data_dir=tmp_path, market=market))
    with pytest.raises(StorageUnavailableError):
        down.get("a/b.pdf")
