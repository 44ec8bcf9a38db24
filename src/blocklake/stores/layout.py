"""Object keys of the lake: Hive-style, so Athena partition projection and DuckDB both read them.

raw/tenant=T/date=YYYY-MM-DD/hour=HH/<stream_id>/<block_id>.blk
tables/<table>/tenant=T/date=YYYY-MM-DD/hour=HH/<file>.parquet
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
_TABLE_KEY = re.compile(
    r"^tables/(?P<table>[a-z_]+)/tenant=(?P<tenant>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"hour=(?P<hour>\d{2})/[^/]+$"
)


def partition(time_ns: int) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of a time, in UTC."""
    moment = datetime.fromtimestamp(time_ns / 1e9, UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def raw_key(tenant: str, time_ns: int, stream_id: str, block_id: str) -> str:
    return f"raw/tenant={tenant}/{partition(time_ns)}/{stream_id}/{block_id}.blk"


def table_prefix(table: str, tenant: str) -> str:
    return f"tables/{table}/tenant={tenant}/"


def table_key(table: str, tenant: str, time_ns: int, name: str) -> str:
    return f"{table_prefix(table, tenant)}{partition(time_ns)}/{name}.parquet"


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


def partition_hour(key: str) -> datetime | None:
    """Start of the hour partition a table's file (Parquet or manifest) belongs to, from its key."""
    match = _TABLE_KEY.match(key)
    if not match:
        return None
    return datetime.strptime(f"{match['date']} {match['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
