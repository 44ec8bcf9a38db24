"""Retention of block metadata: monthly partitions of ``blocks`` on PostgreSQL, rows on SQLite.

On PostgreSQL, expiring a month is ``DROP TABLE`` of its partition: no row-by-row delete, no
vacuum debt, no burst of Aurora capacity. Partitions are made ahead of time (``migrate()`` and a
scheduled job call ``ensure_block_partitions``); a block outside them lands in the DEFAULT
partition, whose rows move into the right partition when that partition is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from blocklake.stores.migrations import lock_schema_changes
from blocklake.stores.sql import SqlExecutor

DEFAULT_PARTITION = "blocks_default"
_PARTITION_NAME = re.compile(r"^blocks_p(\d{4})(\d{2})$")


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, time_ns: int) -> Month:
        moment = datetime.fromtimestamp(time_ns // 1_000_000_000, UTC)
        return cls(moment.year, moment.month)

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start_ns(self) -> int:
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp()) * 1_000_000_000

    @property
    def partition(self) -> str:
        return f"blocks_p{self.year:04d}{self.month:02d}"


@dataclass(frozen=True, slots=True)
class Expired:
    partitions_dropped: list[str]
    rows_deleted: int
    """Rows deleted one by one: SQLite's, and PostgreSQL's DEFAULT partition's."""


def block_partitions(executor: SqlExecutor) -> dict[str, Month]:
    """The monthly partitions of ``blocks`` in the current schema, by name."""
    rows = executor.query(
        "SELECT child.relname AS name FROM pg_inherits "
        "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
        "WHERE pg_inherits.inhparent = 'blocks'::regclass"
    )
    partitions = {}
    for row in rows:
        match = _PARTITION_NAME.match(str(row["name"]))
        if match:
            partitions[str(row["name"])] = Month(int(match.group(1)), int(match.group(2)))
    return partitions


def ensure_block_partitions(executor: SqlExecutor, now_ns: int, months_ahead: int = 2) -> list[str]:
    """Creates the partitions of this month and the next ``months_ahead``; returns new names."""
    if executor.dialect != "postgres":
        return []
    this_month = Month.of(now_ns)
    wanted = [this_month.plus(offset) for offset in range(months_ahead + 1)]
    if all(month.partition in block_partitions(executor) for month in wanted):
        return []
    created = []
    with executor.transaction():
        lock_schema_changes(executor)
        existing = block_partitions(executor)  # again, under the lock: another process may race
        for month in wanted:
            if month.partition not in existing:
                _create_partition(executor, month)
                created.append(month.partition)
    return created


def _create_partition(executor: SqlExecutor, month: Month) -> None:
    """Creates it detached, moves its rows out of DEFAULT, then attaches it.

    Attaching fails if DEFAULT still holds rows of the new range; moving them first (in the
    same transaction) makes partition creation succeed whatever has arrived early.
    """
    name, low, high = month.partition, month.start_ns, month.plus(1).start_ns
    executor.execute(f"CREATE TABLE {name} (LIKE blocks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    executor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
        "WHERE begin_time_ns >= :low AND begin_time_ns < :high RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        {"low": low, "high": high},
    )
    executor.execute(
        f"ALTER TABLE blocks ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
    )


def drop_expired_blocks(executor: SqlExecutor, cutoff_ns: int) -> Expired:
    """Forgets the blocks that began before the month of ``cutoff_ns``.

    Whole months, so that PostgreSQL drops partitions and SQLite agrees on what is kept.
    The payloads in the lake expire separately, by the bucket's lifecycle rules.
    """
    keep_from = Month.of(cutoff_ns)
    if executor.dialect != "postgres":
        deleted = executor.execute(
            "DELETE FROM blocks WHERE begin_time_ns < :keep_from", {"keep_from": keep_from.start_ns}
        )
        return Expired([], deleted)
    with executor.transaction():
        lock_schema_changes(executor)
        expired = sorted(
            name
            for name, month in block_partitions(executor).items()
            if month.plus(1).start_ns <= keep_from.start_ns
        )
        for name in expired:
            executor.execute(f"DROP TABLE {name}")
        deleted = executor.execute(
            f"DELETE FROM {DEFAULT_PARTITION} WHERE begin_time_ns < :keep_from",
            {"keep_from": keep_from.start_ns},
        )
    return Expired(expired, deleted)
