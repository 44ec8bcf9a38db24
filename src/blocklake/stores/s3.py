"""BlobStore on S3: the deployed lake.

``put_if_absent`` is a conditional write (``If-None-Match: *``), so S3 itself refuses a second
copy: a client that retries an upload, or two that race, leave exactly one object.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from blocklake.stores.blobs import BlobNotFound

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
"""Standard mode retries throttling (SlowDown, 503) with jittered exponential backoff. Adaptive
mode's client-side rate limiter helps one long-lived client; a Lambda's clients are short-lived."""

_THROTTLED = frozenset({"SlowDown", "ServiceUnavailable", "503", "Throttling", "RequestTimeout"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CONDITIONAL_CONFLICT_ATTEMPTS = 5


class BlobStoreBusy(RuntimeError):
    """S3 kept refusing a request (throttling, or conflicting conditional writes) after retries."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        client: Any | None = None,
        on_created: Callable[[str], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self._client = client or boto3.client("s3", config=RETRY_CONFIG)
        self._on_created = on_created
        """Called with each key this store creates. Deployed, leave it unset: S3 event
        notifications do this job; the local server may set it to convert at once."""

    def _call(self, operation: Callable[..., dict], key: str, **request: Any) -> dict:
        try:
            return operation(Bucket=self.bucket, **request)
        except ClientError as error:
            if _code(error) in _MISSING:
                raise BlobNotFound(key) from None
            if _code(error) in _THROTTLED:
                retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                raise BlobStoreBusy(
                    f"S3 still throttling s3://{self.bucket}/{key} after {retries} retries "
                    f"({_code(error)}); spread writes over more prefixes or retry later"
                ) from error
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """False when the key exists, including when an earlier attempt of this upload wrote it.

        A 409 ConditionalRequestConflict means another conditional write to the key is in
        flight; retrying settles it: 412 if that one won, success if it failed.
        """
        for attempt in range(_CONDITIONAL_CONFLICT_ATTEMPTS):
            try:
                self._call(self._client.put_object, key, Key=key, Body=data, IfNoneMatch="*")
            except ClientError as error:
                if _code(error) == "PreconditionFailed":
                    return False
                if _code(error) != "ConditionalRequestConflict":
                    raise
                time.sleep(0.05 * 2**attempt)
                continue
            self._created(key)
            return True
        raise BlobStoreBusy(
            f"s3://{self.bucket}/{key}: concurrent conditional writes kept conflicting "
            f"after {_CONDITIONAL_CONFLICT_ATTEMPTS} attempts"
        )

    def put(self, key: str, data: bytes) -> None:
        self._call(self._client.put_object, key, Key=key, Body=data)
        self._created(key)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = keys[start : start + 1000]
            response = self._call(
                self._client.delete_objects,
                batch[0],
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise BlobStoreBusy(
                    f"S3 did not delete {len(response['Errors'])} objects, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    def _created(self, key: str) -> None:
        if self._on_created is not None:
            self._on_created(key)

    def get(self, key: str) -> bytes:
        return self._call(self._client.get_object, key, Key=key)["Body"].read()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"invalid range start={start} length={length}")
        if length == 0:
            return b""
        try:
            response = self._call(
                self._client.get_object, key, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as error:
            if _code(error) == "InvalidRange":  # start at or past the end of the object
                return b""
            raise
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call(self._client.head_object, key, Key=key)
        except BlobNotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        """S3 lists keys in UTF-8 binary order, which is the lexical order the port promises."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]
        except ClientError as error:
            if _code(error) in _THROTTLED:
                raise BlobStoreBusy(
                    f"S3 still throttling listing s3://{self.bucket}/{prefix}"
                ) from error
            raise

    def list_folders(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        return [item["Prefix"] for page in pages for item in page.get("CommonPrefixes", [])]

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @functools.cached_property
    def _presigner(self) -> Any:
        """A client like the store's that signs with SigV4, whatever its configuration: S3
        checks the headers a SigV4 signature lists (botocore may presign with SigV2, which
        binds none of them)."""
        meta = self._client.meta
        return boto3.client(
            "s3",
            region_name=meta.region_name,
            endpoint_url=meta.endpoint_url,
            config=meta.config.merge(Config(signature_version="s3v4")),
        )

    def presigned_put(
        self, key: str, *, size: int, sha256_base64: str, content_type: str, expires_s: int
    ) -> str:
        """A PUT URL whose signature covers ``Content-Length``, ``Content-Type`` and
        ``x-amz-checksum-sha256``: S3 refuses a body of another size or type, and stores one
        of that size only if its SHA-256 is the one signed (the sender must send those three
        headers with exactly these values)."""
        return self._presigner.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentLength": size,
                "ContentType": content_type,
                "ChecksumSHA256": sha256_base64,
            },
            ExpiresIn=expires_s,
        )

    def presigned_get(
        self, key: str, *, content_type: str, disposition: str, expires_s: int
    ) -> str:
        """A GET URL answering the object with that type and ``Content-Disposition``."""
        return self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=expires_s,
        )
