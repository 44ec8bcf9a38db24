"""Object keys of the raw blocks, Hive-style, and the hour partition names of the lake.

raw/tenant=T/date=YYYY-MM-DD/hour=HH/<stream_id>/<block_id>.blk

The tables are Iceberg tables under ``tables/<table>/tenant=T/`` (``blocklake.lake``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_RAW_KEY = re.compile(
    r"^raw/tenant=(?P<tenant>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/"
    r"(?P<stream_id>[0-9a-f-]{36})/(?P<block_id>[0-9a-f-]{36})\.blk$"
)


def partition(time_ns: int) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of a time, in UTC."""
    moment = datetime.fromtimestamp(time_ns / 1e9, UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def raw_key(tenant: str, time_ns: int, stream_id: str, block_id: str) -> str:
    return f"raw/tenant={tenant}/{partition(time_ns)}/{stream_id}/{block_id}.blk"


@dataclass(frozen=True, slots=True)
class RawKey:
    tenant: str
    date: str
    hour: str
    stream_id: str
    block_id: str


def parse_raw_key(key: str) -> RawKey | None:
    match = _RAW_KEY.match(key)
    return RawKey(**match.groupdict()) if match else None
