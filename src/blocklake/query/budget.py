"""Per tenant per UTC day: how many queries ran and how many bytes they scanned, and the limits.

Usage is kept in the lake itself, one empty object per query under
``usage/tenant=T/date=YYYY-MM-DD/`` whose name holds the bytes it scanned: listing the day's
prefix counts the queries and sums the bytes (one LIST call per 1000 queries), on S3 and locally
alike, with no table to migrate and no database to wake. Queries running at the same moment see
each other's usage only once recorded, so a tenant can overrun a budget by at most what its
concurrent queries (``BLOCKLAKE_QUERY_CONCURRENCY`` per process) scan.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from blocklake.config import QueryLimits
from blocklake.errors import ClientError
from blocklake.stores.blobs import BlobStore

USAGE_PREFIX = "usage/"


@dataclass(frozen=True)
class Usage:
    queries: int
    scanned_bytes: int


def _day(time_ns: int) -> datetime:
    return datetime.fromtimestamp(time_ns // 1_000_000_000, UTC).replace(hour=0, minute=0, second=0)


class DailyBudget:
    def __init__(
        self, blobs: BlobStore, limits: QueryLimits, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self.blobs = blobs
        self.limits = limits
        self.clock = clock

    def _prefix(self, tenant: str, time_ns: int) -> str:
        return f"{USAGE_PREFIX}tenant={tenant}/date={_day(time_ns):%Y-%m-%d}/"

    def used(self, tenant: str) -> Usage:
        """What ``tenant`` has used today (UTC)."""
        queries = scanned = 0
        for key in self.blobs.list(self._prefix(tenant, self.clock())):
            queries += 1
            scanned += int(key.rsplit("/", 1)[1].split("-")[1])
        return Usage(queries, scanned)

    def check(self, tenant: str, planned_bytes: int) -> Usage:
        """Today's usage; ``ClientError`` 429 naming the limit and its value when one more
        query, or ``planned_bytes`` more, would go past a daily limit."""
        now = self.clock()
        usage = self.used(tenant)
        retry = {"Retry-After": str(int((_day(now) + timedelta(days=1)).timestamp() - now / 1e9))}
        if usage.queries >= self.limits.daily_queries:
            raise ClientError(
                429,
                "daily_query_limit",
                f"this tenant ran {usage.queries} queries today, its daily limit "
                f"(BLOCKLAKE_QUERY_DAILY_QUERIES = {self.limits.daily_queries}): "
                "more after midnight UTC",
                retry,
            )
        if usage.scanned_bytes + planned_bytes > self.limits.daily_scan_bytes:
            raise ClientError(
                429,
                "daily_scan_limit",
                f"this tenant's queries scanned {usage.scanned_bytes} bytes today and this one "
                f"would scan {planned_bytes} more, past its daily limit "
                f"(BLOCKLAKE_QUERY_DAILY_SCAN_BYTES = {self.limits.daily_scan_bytes})",
                retry,
            )
        return usage

    def record(self, tenant: str, scanned_bytes: int) -> None:
        """Counts one query of ``tenant`` that scanned ``scanned_bytes``."""
        now = self.clock()
        name = f"{now}-{max(scanned_bytes, 0)}-{uuid.uuid4().hex[:12]}"
        self.blobs.put(self._prefix(tenant, now) + name, b"")
