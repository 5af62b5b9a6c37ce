"""A small file store for uploads (verification documents, dispute evidence).

``FileStore`` is the interface; ``LocalFileStore`` keeps files in a directory
(keys are checked so no key can leave the root; files are 0600);
``S3FileStore`` keeps them in a bucket of an S3-compatible store (boto3),
under an optional key prefix, with the same key rules.
``make_store(settings)`` picks the backend from ``market.storage_url``.
``check_upload`` checks an upload's size and its real type (sniffed from the
magic bytes, not trusted from the client's content type).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from node.errors import ConfigError, EscrowdError, NotFoundError, ValidationError

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
# S3 bucket naming rules (the DNS-compatible subset every S3 store accepts).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class StorageUnavailableError(EscrowdError):
    """The file store could not be reached or refused the operation."""

    code = "storage_unavailable"
    http_status = 503


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


class S3FileStore:
    """Files in an S3-compatible bucket: ``s3://bucket/prefix/<key>``.

    Keys pass the same ``check_key`` rules as the local store (no ``..``, no
    absolute or empty segments), so no key reaches outside the prefix. An
    object that is not there is NotFoundError (``file_not_found``); the store
    failing otherwise is StorageUnavailableError (503 ``storage_unavailable``).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", *,
                 server_side_encryption: str | None = None,
                 kms_key_id: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self._sse: dict[str, str] = {}
        if server_side_encryption:
            self._sse["ServerSideEncryption"] = server_side_encryption
            if kms_key_id:
                self._sse["SSEKMSKeyId"] = kms_key_id

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> str:
        name = self._object(key)
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data,
                                   ContentType=content_type, **self._sse)
        return key

    def get(self, key: str) -> bytes:
        name = self._object(key)
        with self._errors(key):
            obj = self.client.get_object(Bucket=self.bucket, Key=name)
            body: bytes = obj["Body"].read()
            return body

    def delete(self, key: str) -> None:
        name = self._object(key)
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if str(err.get("Code")) in _S3_MISSING:
                raise NotFoundError("no such file", code="file_not_found", key=key) from None
            raise StorageUnavailableError(
                f"the file store refused the request ({err.get('Code')})",
                code="storage_unavailable") from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(
                "the file store cannot be reached", code="storage_unavailable") from exc


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket[/prefix]``; ConfigError naming
    ``market.storage_url`` when the bucket or prefix is not valid."""
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket or parsed.query or parsed.fragment:
        raise ConfigError(
            "market.storage_url (ESCROWD_MARKET__STORAGE_URL): expected s3://bucket/prefix "
            "with a valid bucket name (3-63 lowercase letters, digits, '.', '-')",
            setting="market.storage_url",
        )
    if prefix:
        try:
            check_key(prefix)
        except ValidationError:
            raise ConfigError(
                "market.storage_url (ESCROWD_MARKET__STORAGE_URL): the key prefix may hold "
                "letters, digits, '.', '_', '-' in '/'-separated segments",
                setting="market.storage_url",
            ) from None
    return bucket, prefix


def make_s3_store(settings: Settings) -> S3FileStore:
    """An S3FileStore for ``market.storage_url = s3://...`` and the
    ``market.s3_*`` settings (credentials: boto3's standard chain unless set)."""
    import boto3
    from botocore.config import Config

    market = settings.market
    bucket, prefix = parse_s3_url(market.storage_url or "")
    if (market.s3_access_key_id is None) != (market.s3_secret_access_key is None):
        raise ConfigError(
            "market.s3_access_key_id and market.s3_secret_access_key go together "
            "(or leave both unset for boto3's credential chain)",
            setting="market.s3_access_key_id",
        )
    credentials: dict[str, str] = {}
    if market.s3_access_key_id is not None and market.s3_secret_access_key is not None:
        credentials = {
            "aws_access_key_id": market.s3_access_key_id,
            "aws_secret_access_key": market.s3_secret_access_key.get_secret_value(),
        }
    config = Config(
        s3={"addressing_style": market.s3_addressing_style},
        connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
    )
    client = boto3.session.Session().client(
        "s3", endpoint_url=market.s3_endpoint_url, region_name=market.s3_region,
        config=config, **credentials,
    )
    return S3FileStore(client, bucket, prefix,
                       server_side_encryption=market.s3_server_side_encryption,
                       kms_key_id=market.s3_kms_key_id)


def make_store(settings: Settings) -> FileStore:
    """The file store ``market.storage_url`` names (default: ``data_dir/files``)."""
    url = settings.market.storage_url
    if url is None or url == "":
        return LocalFileStore(settings.data_dir / "files")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return make_s3_store(settings)
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
