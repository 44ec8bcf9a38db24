"""HTTP to the ingestion API with the standard library: one attempt per call, its failure
classified so that the uploader knows whether to retry, register again or give the block up.

Every request is idempotent on the server (ids chosen here), so retrying after a timeout can
never store an event twice.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from blocklake.format.header import CONTENT_TYPE as BLOCK_CONTENT_TYPE

TRANSIENT_STATUS = frozenset({408, 425, 429})
"""Besides 5xx: the request may succeed later as it is."""
UNKNOWN_CODES = frozenset({"unknown_process", "unknown_stream"})
"""404 codes meaning the server lost (or never had) a registration: register again, resend."""


class DeliveryError(Exception):
    """The request did not succeed.

    ``kind`` is ``"transient"`` (connection error, timeout, 408, 425, 429, 5xx: try again
    later), ``"unknown"`` (404 ``unknown_process`` / ``unknown_stream``: register again) or
    ``"permanent"`` (any other 4xx: sending it again cannot help). ``code`` is the server's error
    code, ``retry_after`` its ``Retry-After`` in seconds, ``limits`` its ``limits`` document.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int = 0,
        code: str = "",
        retry_after: float | None = None,
        limits: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.limits = limits or {}

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"


@dataclass
class Transport:
    endpoint: str
    api_key: str
    timeout: float = 10.0

    def post_json(self, path: str, document: dict) -> dict:
        """POSTs ``document`` (text made valid UTF-8 first); the answer's JSON object."""
        return self._post(path, json.dumps(valid_text(document)).encode(), "application/json")

    def post_block(self, data: bytes) -> dict:
        return self._post("/v1/blocks", data, BLOCK_CONTENT_TYPE)

    def _post(self, path: str, body: bytes, content_type: str) -> dict:
        request = urllib.request.Request(
            self.endpoint.rstrip("/") + path,
            data=body,
            method="POST",
            headers={"Content-Type": content_type, "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json_object(response.read())
        except urllib.error.HTTPError as error:
            raise _refused(path, error) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise DeliveryError(f"POST {path}: {error}", kind="transient") from None


def _refused(path: str, error: urllib.error.HTTPError) -> DeliveryError:
    try:
        text = error.read()
    except (http.client.HTTPException, OSError):
        text = b""
    document = _json_object(text)
    problem = document.get("error")
    code = problem.get("code", "") if isinstance(problem, dict) else ""
    status = error.code
    if status in TRANSIENT_STATUS or status >= 500:
        kind = "transient"
    elif status == 404 and code in UNKNOWN_CODES:
        kind = "unknown"
    else:
        kind = "permanent"
    return DeliveryError(
        f"POST {path}: {status} {text[:500].decode('utf-8', 'replace')}",
        kind=kind,
        status=status,
        code=str(code),
        retry_after=retry_after_seconds(error.headers.get("Retry-After")),
        limits=document.get("limits") if isinstance(document.get("limits"), dict) else None,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_object(text: bytes) -> dict:
    """An answer's JSON object; anything else (empty, HTML from a proxy) reads as ``{}``: the
    status already said whether the request succeeded."""
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def valid_text(value: object) -> object:
    """``value`` with every string made valid UTF-8 (a lone surrogate, as ``os.fsdecode`` makes
    from a Latin-1 file name, becomes "?", as in block strings), keys included."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_text(v) for v in value]
    return value
