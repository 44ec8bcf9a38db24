"""HTTP to the ingestion API with the standard library: retries with backoff, honours Retry-After.

Every request is idempotent on the server (ids chosen here), so retrying after a timeout can
never store an event twice.
"""

from __future__ import annotations

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
                    text = response.read()
                return json.loads(text) if text else {}
            except urllib.error.HTTPError as error:
                detail = error.read()[:500].decode("utf-8", "replace")
                retryable = error.code == 429 or error.code >= 500
                if not retryable:
                    raise DeliveryError(
                        f"POST {path}: {error.code} {detail}", permanent=True
                    ) from None
                retry_after = error.headers.get("Retry-After")
                wait = float(retry_after) if retry_after and retry_after.isdigit() else pause
                failure = f"POST {path}: {error.code} {detail}"
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                wait, failure = pause, f"POST {path}: {error}"
            if attempt == self.attempts:
                raise DeliveryError(failure, permanent=False)
            time.sleep(min(wait, self.max_backoff) * random.uniform(0.5, 1.0))
            pause = min(pause * 2, self.max_backoff)
