"""Attachments: large binaries (crash dumps, images, video) stored beside the blocks, referenced
by an ``attachment`` event in a block, queryable in the ``attachments`` table and downloadable
with the tenant's key.

An upload is declared first (``POST /v1/attachments`` with its name, content type, size and
SHA-256), then its bytes go straight to storage: on S3 through a presigned PUT whose signature
binds ``Content-Length``, ``Content-Type`` and ``x-amz-checksum-sha256`` (S3 refuses other bytes,
more bytes, or a swapped object), locally to the server's own upload URL, which streams the body
to disk and enforces the same three. Keys, per tenant::

    attachments/tenant=T/<attachment_id>.json   the declaration (what the PUT must match)
    attachments/tenant=T/<attachment_id>.data   the bytes

A declaration is written once (conditional put): declaring the same id again with the same
values is answered with a fresh upload URL (or ``uploaded`` when the bytes are there already),
with other values 409; the bytes are fixed by their checksum, so a repeated upload stores the
same object. Another tenant's id is not found (404), never forbidden: ids are not secrets, and
a 403 would say that the id exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from blocklake.errors import ClientError
from blocklake.format.media_type import (
    MAX_CONTENT_TYPE_CHARS,
    valid_attachment_id,
    valid_content_type,
)
from blocklake.stores.blobs import BlobNotFound, BlobStore

PREFIX = "attachments/"
PATH = "/v1/attachments"
"""The API path: ``POST`` declares; ``GET``/``PUT`` ``PATH/<id>`` download and (locally) upload."""
DOWNLOAD_URL_EXPIRES_S = 300
"""Life of a presigned GET: a download must start within it."""
UPLOAD_URL_EXPIRES_S = 3600
"""Life of a presigned PUT: an upload must start within it (S3 checks at the start); the SDK
declares again for a fresh URL when one expired."""
MAX_NAME_CHARS = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_FIELDS = frozenset({"attachment_id", "name", "content_type", "size", "sha256"})
CHUNK_BYTES = 1024 * 1024
"""Bytes read and written at a time while streaming an upload to disk."""


@dataclass(frozen=True)
class Declaration:
    """What an upload must be: ``size`` in bytes, ``sha256`` the lowercase hex digest."""

    attachment_id: str
    name: str
    content_type: str
    size: int
    sha256: str

    @property
    def sha256_base64(self) -> str:
        """The digest as S3's ``x-amz-checksum-sha256`` and HTTP's ``Repr-Digest`` spell it."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def safe_content_type(self) -> str:
        """The declared type if it is a valid media type, else ``application/octet-stream``
        (a declaration stored before the check was strict never reaches a header)."""
        return self.content_type if valid_content_type(self.content_type) else DEFAULT_CONTENT_TYPE

    @property
    def link(self) -> str:
        return f"{PATH}/{self.attachment_id}"

    def download_headers(self) -> dict[str, str]:
        """Headers of a download: type, a file name for browsers and ``curl -OJ``, the digest."""
        return {
            "Content-Type": self.safe_content_type,
            "Content-Disposition": content_disposition(self.name),
            "Repr-Digest": f"sha-256=:{self.sha256_base64}:",
        }


def content_disposition(name: str) -> str:
    """``attachment`` with the name as an ASCII fallback and in full (RFC 6266 ``filename*``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1] or "attachment"
    fallback = "".join(c if " " <= c <= "~" and c not in '"%' else "_" for c in base)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(base)}"


def valid_id(attachment_id: str) -> str:
    """The id if it is a canonical (lowercase) UUID, else 400 naming ``attachment_id``."""
    if not valid_attachment_id(attachment_id):
        raise ClientError(
            400,
            "invalid_attachment_id",
            f"attachment_id {str(attachment_id)[:80]!r} is not a lowercase UUID",
        )
    return attachment_id


def parse_declaration(document: dict, max_bytes: int) -> Declaration:
    """The declaration in a ``POST /v1/attachments`` body; ``ClientError`` naming the field
    otherwise (413 for a size over ``max_bytes``)."""
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise ClientError(
            400, "unknown_field", f"unknown field {unknown[0]!r}; expected {sorted(_FIELDS)}"
        )
    given = document.get("attachment_id")
    attachment_id = str(uuid.uuid4()) if given is None else valid_id(given)
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise ClientError(400, "invalid_name", "name must be a non-empty string")
    if len(name) > MAX_NAME_CHARS or "\0" in name or not _encodable(name):
        raise ClientError(
            400,
            "invalid_name",
            f"name must be UTF-8 text of at most {MAX_NAME_CHARS} characters, without NUL",
        )
    content_type = document.get("content_type", DEFAULT_CONTENT_TYPE)
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_CHARS
        or not valid_content_type(content_type)
    ):
        raise ClientError(
            400,
            "invalid_content_type",
            f"content_type {str(content_type)[:80]!r} is not a media type such as image/png "
            f"(at most {MAX_CONTENT_TYPE_CHARS} characters)",
        )
    size = document.get("size")
    if type(size) is not int or size < 0:
        raise ClientError(400, "invalid_size", "size must be a non-negative integer of bytes")
    if size > max_bytes:
        raise ClientError(
            413,
            "attachment_too_large",
            f"size {size} is over the largest attachment, {max_bytes} bytes "
            "(BLOCKLAKE_ATTACHMENT_MAX_BYTES)",
        )
    sha256 = document.get("sha256")
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise ClientError(400, "invalid_sha256", "sha256 must be 64 hexadecimal digits")
    return Declaration(attachment_id, name, content_type, size, sha256.lower())


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate (JSON's "\ud800") is not
    except UnicodeEncodeError:
        return False
    return True


@runtime_checkable
class UrlSigner(Protocol):
    """A store that hands out presigned URLs (S3): the bytes never pass through a Lambda."""

    def presigned_put(
        self, key: str, *, size: int, sha256_base64: str, content_type: str, expires_s: int
    ) -> str:
        """A PUT URL valid only for a body of ``size`` bytes with that checksum and type."""
        ...

    def presigned_get(
        self, key: str, *, content_type: str, disposition: str, expires_s: int
    ) -> str: ...


@runtime_checkable
class StreamingStore(Protocol):
    """A store an upload can stream into (the local directory)."""

    def write_if_absent(self, key: str, write: Callable[[BinaryIO], None]) -> bool:
        """Calls ``write`` with a new temporary file, then stores it under ``key`` unless the
        key exists; True if this call created it. If ``write`` raises, nothing is stored."""
        ...

    def url(self, key: str) -> str: ...


def declaration_key(tenant: str, attachment_id: str) -> str:
    return f"{PREFIX}tenant={tenant}/{attachment_id}.json"


def data_key(tenant: str, attachment_id: str) -> str:
    return f"{PREFIX}tenant={tenant}/{attachment_id}.data"


class AttachmentService:
    """Declares, receives (locally) and hands out attachments of a tenant."""

    def __init__(self, blobs: BlobStore, max_bytes: int) -> None:
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.signer = blobs if isinstance(blobs, UrlSigner) else None
        """Set when the store presigns (S3); else uploads and downloads go through the server."""

    @property
    def limits(self) -> dict[str, int]:
        return {"max_attachment_bytes": self.max_bytes}

    def declare(self, tenant: str, document: dict) -> tuple[int, dict]:
        """``POST /v1/attachments``: the status (201 new, 200 declared before) and the answer
        ``{attachment_id, status, link, upload: {url, method, headers}, limits}``; ``status``
        is ``created``, ``exists`` (upload it) or ``uploaded`` (no ``upload``: it is stored).
        A relative ``url`` is the API's own (send the API key); an absolute one is presigned
        (send no key)."""
        declared = parse_declaration(document, self.max_bytes)
        text = json.dumps(asdict(declared), sort_keys=True).encode()
        created = self.blobs.put_if_absent(declaration_key(tenant, declared.attachment_id), text)
        if not created:
            existing = self.declaration(tenant, declared.attachment_id)
            if existing != declared:
                raise ClientError(
                    409,
                    "attachment_conflict",
                    f"attachment {declared.attachment_id} was declared with other values "
                    "(name, content_type, size or sha256): choose a new attachment_id",
                )
        answer: dict = {"attachment_id": declared.attachment_id, "link": declared.link}
        if not created and self.blobs.exists(data_key(tenant, declared.attachment_id)):
            answer["status"] = "uploaded"
        else:
            answer["status"] = "created" if created else "exists"
            answer["upload"] = self._upload(tenant, declared)
        answer["limits"] = self.limits
        return (201 if created else 200), answer

    def _upload(self, tenant: str, declared: Declaration) -> dict:
        headers = {"Content-Type": declared.content_type, "Content-Length": str(declared.size)}
        if self.signer is None:
            return {"url": declared.link, "method": "PUT", "headers": headers}
        url = self.signer.presigned_put(
            data_key(tenant, declared.attachment_id),
            size=declared.size,
            sha256_base64=declared.sha256_base64,
            content_type=declared.content_type,
            expires_s=UPLOAD_URL_EXPIRES_S,
        )
        headers["x-amz-checksum-sha256"] = declared.sha256_base64
        return {"url": url, "method": "PUT", "headers": headers}

    def declaration(self, tenant: str, attachment_id: str) -> Declaration:
        """The tenant's declaration of that id; 404 ``unknown_attachment`` if it has none."""
        try:
            text = self.blobs.get(declaration_key(tenant, valid_id(attachment_id)))
        except BlobNotFound:
            raise ClientError(
                404, "unknown_attachment", f"no attachment {attachment_id} in this tenant"
            ) from None
        return Declaration(**json.loads(text))

    def stored(self, tenant: str, attachment_id: str) -> Declaration:
        """The declaration of an uploaded attachment; 404 if unknown or not uploaded (yet)."""
        declared = self.declaration(tenant, attachment_id)
        if not self.blobs.exists(data_key(tenant, attachment_id)):
            raise ClientError(
                404,
                "attachment_not_uploaded",
                f"attachment {attachment_id} was declared but its bytes never arrived",
            )
        return declared

    def download_url(self, tenant: str, attachment_id: str) -> tuple[Declaration, str]:
        """A short-lived presigned GET of an uploaded attachment (S3 only)."""
        if self.signer is None:  # a path the local server did not take as a download
            raise ClientError(
                404, "not_found", f"attachments are downloaded from {PATH}/<attachment_id>"
            )
        declared = self.stored(tenant, attachment_id)
        url = self.signer.presigned_get(
            data_key(tenant, attachment_id),
            content_type=declared.safe_content_type,
            disposition=content_disposition(declared.name),
            expires_s=DOWNLOAD_URL_EXPIRES_S,
        )
        return declared, url

    def local_file(self, tenant: str, attachment_id: str) -> tuple[Declaration, str]:
        """The file holding an uploaded attachment (a local store only)."""
        declared = self.stored(tenant, attachment_id)
        return declared, self.blobs.url(data_key(tenant, attachment_id))

    def receive(
        self, tenant: str, attachment_id: str, length: int, read: Callable[[int], bytes]
    ) -> dict:
        """``PUT /v1/attachments/<id>`` on the local server: streams ``length`` bytes from
        ``read`` to disk while hashing them, and stores them only if they are the declared
        size and SHA-256. ``{"status": "stored" | "duplicate", ...}``; ``ClientError`` naming
        what differs. ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end of input,
        and raises ``TimeoutError`` when the client is too slow."""
        if not isinstance(self.blobs, StreamingStore):
            raise ClientError(
                405, "method_not_allowed", "uploads go to the URL POST /v1/attachments answers"
            )
        declared = self.declaration(tenant, attachment_id)
        if length != declared.size:
            raise ClientError(
                400,
                "size_mismatch",
                f"Content-Length {length} is not the declared size {declared.size}",
            )

        def write(file: BinaryIO) -> None:
            digest = hashlib.sha256()
            left = length
            while left > 0:
                chunk = read(min(left, CHUNK_BYTES))
                if not chunk:
                    raise ClientError(
                        400, "incomplete_body", f"the body ended {left} bytes short of its length"
                    )
                digest.update(chunk)
                file.write(chunk)
                left -= len(chunk)
            if digest.hexdigest() != declared.sha256:
                raise ClientError(
                    400,
                    "checksum_mismatch",
                    f"the body's SHA-256 {digest.hexdigest()} is not the declared sha256 "
                    f"{declared.sha256}",
                )

        created = self.blobs.write_if_absent(data_key(tenant, attachment_id), write)
        status = "stored" if created else "duplicate"
        return {"attachment_id": attachment_id, "status": status, "link": declared.link}
