"""moto's S3, made to behave like S3 where the blob store depends on it, and fault injection."""

from __future__ import annotations

import threading
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.s3.responses import S3Response

BUCKET = "blocklake-test-lake"

_put_lock = threading.Lock()
_unlocked_put_object = S3Response.put_object


def _atomic_put_object(self: S3Response) -> Any:
    with _put_lock:
        return _unlocked_put_object(self)


def make_conditional_puts_atomic(monkeypatch: Any) -> None:
    """S3 checks ``If-None-Match`` and writes atomically; moto checks, then writes. Serializing
    moto's PutObject restores S3's guarantee so that racing threads test our code, not moto's."""
    monkeypatch.setattr(S3Response, "put_object", _atomic_put_object)


def s3_error(code: str, status: int) -> AWSResponse:
    """An S3 error as it arrives over HTTP, for a ``before-send`` hook to return."""
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    response = AWSResponse("https://s3.test", status, {}, None)
    response._content = body
    return response
