"""How many queries one tenant may run at once in this process."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from blocklake.errors import ClientError

RETRY_AFTER_S = 1


def _queries(count: int) -> str:
    return "1 query is" if count == 1 else f"{count} queries are"


class TenantSlots:
    """At most ``limit`` queries per tenant at a time; one more is refused with 429 at once
    rather than queued (a queue would hold the caller's connection and the gateway's 30 s)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def taken(self, tenant: str) -> Iterator[None]:
        with self._lock:
            if self._running[tenant] >= self.limit:
                raise ClientError(
                    429,
                    "too_many_queries",
                    f"{_queries(self.limit)} of this tenant already running, as many as one "
                    "tenant may run at once (BLOCKLAKE_QUERY_CONCURRENCY): retry when one ends",
                    {"Retry-After": str(RETRY_AFTER_S)},
                )
            self._running[tenant] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[tenant] -= 1
