"""A small file store for uploads (verification documents, dispute evidence).

``FileStore`` is the interface; ``LocalFileStore`` keeps files in a directory
(keys are checked so no key can leave the root; files are 0600).
``make_store(settings)`` picks the backend from ``market.storage_url``.
``check_upload`` checks an upload's size and its real type (sniffed from the
magic bytes, not trusted from the client's content type).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlparse

from node.errors import ConfigError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from node.config import Settings

# Magic-byte signatures of the types uploads may have. No sniffing library
# (python-magic, filetype, puremagic) is installed; these three are fixed by
# their specifications (ISO 32000 header, PNG signature, JPEG SOI + marker).
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
DOCUMENT_TYPES: frozenset[str] = frozenset(SIGNATURES)
# Non-standard names clients send for these types.
ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}
EXTENSIONS: dict[str, str] = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class FileStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key`` (replacing it); returns the key."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; NotFoundError if there are none."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...


def sniff_type(data: bytes) -> str | None:
    """The media type the magic bytes say ``data`` is, or None if unknown."""
    for media_type, sigs in SIGNATURES.items():
        if any(data.startswith(sig) for sig in sigs):
            return media_type
    return None


def check_upload(data: bytes, content_type: str, *, allowed: set[str], max_bytes: int) -> None:
    """Refuse an upload that is empty, too large, of a type not allowed, or
    whose bytes are not what its declared content type says.

    Raises ValidationError with code ``upload_empty``, ``upload_too_large``,
    ``upload_type_not_allowed`` or ``upload_type_mismatch``.
    """
    if not data:
        raise ValidationError("the uploaded file is empty", code="upload_empty", field="file")
    if len(data) > max_bytes:
        raise ValidationError(
            f"the uploaded file is {len(data)} bytes; at most {max_bytes} are allowed",
            code="upload_too_large",
            field="file",
            max_bytes=max_bytes,
        )
    declared = content_type.split(";", 1)[0].strip().lower()
    declared = ALIASES.get(declared, declared)
    real = sniff_type(data)
    if real is None or real not in allowed:
        raise ValidationError(
            "file type not allowed; allowed: " + ", ".join(sorted(allowed)),
            code="upload_type_not_allowed",
            field="file",
        )
    if declared != real:
        raise ValidationError(
            f"the file is {real} but was declared as {declared or 'nothing'}",
            code="upload_type_mismatch",
            field="file",
        )


def check_key(key: str) -> list[str]:
    """The path segments of a safe key: ``a/b/c.pdf`` with segments of
    letters, digits, ``.``, ``_``, ``-`` (not starting with ``.``); anything
    else (absolute paths, ``..``, backslashes, empty segments) is refused."""
    parts = key.split("/")
    if not key or len(key) > 512 or not all(_SEGMENT.match(p) for p in parts):
        raise ValidationError("invalid file key", code="invalid_file_key", key=key[:80])
    return parts


def new_key(prefix: str, content_type: str) -> str:
    """A fresh unguessable key under ``prefix`` with the type's extension."""
    check_key(prefix)
    ext = EXTENSIONS.get(content_type, "bin")
    return f"{prefix}/{secrets.token_hex(16)}.{ext}"


class LocalFileStore:
    """Files in a directory: ``root/<key>``, written atomically, mode 0600."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*check_key(key))
        # Defence in depth: segments cannot contain '/' or start with '.', but
        # a symlink inside the root could still point out of it.
        if not path.resolve().is_relative_to(self.root):
            raise ValidationError("invalid file key", code="invalid_file_key", key=key[:80])
        return path

    def put(self, key: str, data: bytes, content_type: str) -> str:  # noqa: ARG002
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError("no such file", code="file_not_found", key=key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def make_store(settings: Settings) -> FileStore:
    """The file store ``market.storage_url`` names (default: ``data_dir/files``)."""
    url = settings.market.storage_url
    if url is None or url == "":
        return LocalFileStore(settings.data_dir / "files")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        raise ConfigError(
            "market.storage_url (ESCROWD_MARKET__STORAGE_URL): s3:// storage needs an S3 "
            "client library (boto3), which is not installed; use a directory path or "
            "file:// URL",
            setting="market.storage_url",
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(
                "market.storage_url (ESCROWD_MARKET__STORAGE_URL): file:// URL must be local",
                setting="market.storage_url",
            )
        return LocalFileStore(Path(unquote(parsed.path)))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LocalFileStore(Path(url))
    raise ConfigError(
        f"market.storage_url (ESCROWD_MARKET__STORAGE_URL): unsupported scheme {parsed.scheme!r}"
        " (use a directory path, file:// or s3://)",
        setting="market.storage_url",
    )
