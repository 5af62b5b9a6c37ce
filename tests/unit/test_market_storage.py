"""The file store keeps keys inside its root with 0600 files, and uploads are
checked by their real (sniffed) type and size; make_store follows storage_url."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.config import Settings
from node.errors import ConfigError, NotFoundError, ValidationError
from node.market.settings import MarketSettings
from node.storage import DOCUMENT_TYPES, LocalFileStore, check_upload, make_store, new_key

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16


def test_put_get_delete_roundtrip_with_private_files(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    key = new_key("verification/7", "application/pdf")
    assert store.put(key, PDF, "application/pdf") == key
    assert store.get(key) == PDF
    mode = stat.S_IMODE((tmp_path / "files" / key).stat().st_mode)
    assert mode == 0o600
    store.put(key, b"%PDF-2", "application/pdf")
    assert store.get(key) == b"%PDF-2"
    store.delete(key)
    store.delete(key)  # idempotent
    with pytest.raises(NotFoundError) as exc:
        store.get(key)
    assert exc.value.code == "file_not_found"


@pytest.mark.parametrize(
    "key",
    ["../x", "a/../../x", "/etc/passwd", "a//b", "", ".hidden", "a\\..\\b", "a/./b", "a/b/"],
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalFileStore(tmp_path)
    with pytest.raises(ValidationError) as exc:
        store.put(key, PDF, "application/pdf")
    assert exc.value.code == "invalid_file_key"
    assert list(tmp_path.iterdir()) == []


def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ValidationError):
        LocalFileStore(root).put("link/x.pdf", PDF, "application/pdf")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (PDF, "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg; charset=binary"),
        (JPEG, "image/jpg"),
        (PDF, "application/x-pdf"),
    ],
)
def test_allowed_uploads_pass(data: bytes, ctype: str) -> None:
    check_upload(data, ctype, allowed=set(DOCUMENT_TYPES), max_bytes=1000)


@pytest.mark.parametrize(
    ("data", "ctype", "allowed", "code"),
    [
        (b"", "application/pdf", {"application/pdf"}, "upload_empty"),
        (PDF * 100, "application/pdf", {"application/pdf"}, "upload_too_large"),
        (b"<html><script>", "application/pdf", {"application/pdf"}, "upload_type_not_allowed"),
        (PNG, "image/png", {"application/pdf"}, "upload_type_not_allowed"),
        (PNG, "application/pdf", {"application/pdf", "image/png"}, "upload_type_mismatch"),
    ],
)
def test_bad_uploads_are_refused(data: bytes, ctype: str, allowed: set[str], code: str) -> None:
    with pytest.raises(ValidationError) as exc:
        check_upload(data, ctype, allowed=allowed, max_bytes=1000)
    assert exc.value.code == code


def test_make_store_follows_storage_url(tmp_path: Path) -> None:
    default = make_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalFileStore)
    assert default.root == (tmp_path / "files").resolve()
    url = make_store(
        Settings(data_dir=tmp_path, market=MarketSettings(storage_url=f"file://{tmp_path}/up"))
    )
    assert isinstance(url, LocalFileStore) and url.root == (tmp_path / "up").resolve()
    with pytest.raises(ConfigError, match="storage_url"):  # not a valid bucket name
        make_store(Settings(data_dir=tmp_path, market=MarketSettings(storage_url="s3://b/p")))
    with pytest.raises(ConfigError, match="storage_url"):
        make_store(Settings(data_dir=tmp_path, market=MarketSettings(storage_url="ftp://x/y")))
