"""HTTP to the ingestion API with the standard library: retries with backoff, honours Retry-After.

Every request is idempotent on the server (ids chosen here), so retrying after a timeout can
never store an event twice.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from blocklake.format.header import CONTENT_TYPE as BLOCK_CONTENT_TYPE


class DeliveryError(Exception):
    """The request did not succeed; ``permanent`` when sending it again cannot help (a 4xx)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Transport:
    endpoint: str
    api_key: str
    timeout: float = 10.0
    attempts: int = 5
    backoff: float = 0.2
    """First pause between attempts; it doubles each time, with jitter, up to ``max_backoff``."""
    max_backoff: float = 5.0

    def post_json(self, path: str, document: dict) -> dict:
        return self._post(path, json.dumps(document).encode(), "application/json")

    def post_block(self, data: bytes) -> dict:
        return self._post("/v1/blocks", data, BLOCK_CONTENT_TYPE)

    def _post(self, path: str, body: bytes, content_type: str) -> dict:
        url = self.endpoint.rstrip("/") + path
        pause, attempt = self.backoff, 0
        while True:
            attempt += 1
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": content_type, "Authorization": f"Bearer {self.api_key}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _json_object(response.read(), path)
            except urllib.error.HTTPError as error:
                detail = error.read()[:500].decode("utf-8", "replace")
                failure = f"POST {path}: {error.code} {detail}"
                if error.code not in RETRYABLE_STATUS and error.code < 500:
                    raise DeliveryError(failure, permanent=True) from None
                retry_after = error.headers.get("Retry-After", "")
                # The server's Retry-After is obeyed as given; jitter is for our own backoff only.
                wait = float(retry_after) if retry_after.isdigit() else _jittered(pause)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                wait, failure = _jittered(pause), f"POST {path}: {error}"
            if attempt >= self.attempts:
                raise DeliveryError(failure, permanent=False)
            time.sleep(min(wait, MAX_RETRY_AFTER))
            pause = min(pause * 2, self.max_backoff)


RETRYABLE_STATUS = frozenset({408, 425, 429})
"""Besides 5xx: the request may succeed later as it is."""
MAX_RETRY_AFTER = 60.0


def _jittered(pause: float) -> float:
    return pause * random.uniform(0.5, 1.0)


def _json_object(text: bytes, path: str) -> dict:
    """A success response's settings document; a malformed one is the server's fault, retried."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise DeliveryError(f"POST {path}: response is not a JSON object", permanent=False)
    return document
