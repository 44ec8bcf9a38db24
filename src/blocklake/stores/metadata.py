"""MetadataStore: processes, streams and blocks on any ``SqlExecutor`` (SQLite, PG, Data API).

Every insert is idempotent: registering the same process, stream or block again changes nothing
and reports that it already existed, so a client's retry never duplicates a row.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

from blocklake.format.schema import layout_from_text, layout_to_json
from blocklake.stores.migrations import apply_migrations
from blocklake.stores.models import BlockInfo, ConversionFailure, ProcessInfo, StreamInfo
from blocklake.stores.retention import ensure_block_partitions
from blocklake.stores.sql import Row, SqlExecutor


class MetadataConflict(ValueError):
    """An id already registered with different content."""


class MetadataStore(Protocol):
    def insert_process(self, tenant: str, process: ProcessInfo) -> bool: ...
    def get_process(self, tenant: str, process_id: str) -> ProcessInfo | None: ...
    def insert_stream(self, tenant: str, stream: StreamInfo) -> bool: ...
    def get_stream(self, tenant: str, stream_id: str) -> StreamInfo | None: ...
    def insert_block(self, tenant: str, block: BlockInfo) -> bool: ...
    def get_block(self, tenant: str, block_id: str) -> BlockInfo | None: ...
    def list_blocks(
        self, tenant: str, begin_time_ns: int, end_time_ns: int, stream_id: str | None = None
    ) -> list[BlockInfo]: ...
    def blocks_inserted_between(self, begin_ns: int, end_ns: int) -> list[tuple[str, BlockInfo]]:
        """(tenant, block) of every tenant's blocks inserted in [begin, end), for the
        reconciler."""
        ...

    def record_conversion_failure(
        self, tenant: str, block_id: str, object_key: str, reason: str
    ) -> int:
        """Counts one more failed conversion of the block; returns its failed attempts."""
        ...

    def clear_conversion_failure(self, tenant: str, block_id: str) -> None: ...
    def conversion_failures(self, tenant: str | None = None) -> list[ConversionFailure]:
        """The blocks that failed to convert, of one tenant or of all."""
        ...


_PROCESS_COLUMNS = (
    "process_id, exe, username, computer, start_time_ns, start_ticks, tick_frequency, "
    "parent_process_id, properties"
)
_STREAM_COLUMNS = "stream_id, process_id, tags, layout, properties"
_BLOCK_COLUMNS = (
    "block_id, stream_id, process_id, sequence, begin_ticks, end_ticks, begin_time_ns, "
    "end_time_ns, object_count, payload_size, object_key"
)


def _placeholders(columns: str) -> str:
    return ", ".join(f":{name.strip()}" for name in columns.split(","))


def _process(row: Row) -> ProcessInfo:
    return ProcessInfo(
        process_id=row["process_id"],
        exe=row["exe"],
        username=row["username"],
        computer=row["computer"],
        start_time_ns=int(row["start_time_ns"]),
        start_ticks=int(row["start_ticks"]),
        tick_frequency=int(row["tick_frequency"]),
        parent_process_id=row["parent_process_id"],
        properties=json.loads(row["properties"]),
    )


def _stream(row: Row) -> StreamInfo:
    return StreamInfo(
        stream_id=row["stream_id"],
        process_id=row["process_id"],
        tags=tuple(json.loads(row["tags"])),
        layout=layout_from_text(row["layout"]),
        properties=json.loads(row["properties"]),
    )


def _block(row: Row) -> BlockInfo:
    return BlockInfo(**{name: row[name] for name in BlockInfo.__slots__})


class SqlMetadataStore:
    def __init__(self, executor: SqlExecutor) -> None:
        self.executor = executor

    def migrate(self) -> list[int]:
        """Applies the migrations, then makes sure the coming months have block partitions."""
        applied = apply_migrations(self.executor)
        ensure_block_partitions(self.executor, time.time_ns())
        return applied

    def _insert(self, table: str, columns: str, key: str, tenant: str, values: dict) -> bool:
        """Inserts unless the key exists; True if inserted. Same key, other content: conflict."""
        params = {"tenant": tenant, "insert_time_ns": time.time_ns(), **values}
        # No conflict target: on PostgreSQL, blocks is partitioned and its primary key also holds
        # begin_time_ns; NOT EXISTS catches the same id arriving with another begin time.
        inserted = self.executor.execute(
            f"INSERT INTO {table} (tenant, {columns}, insert_time_ns) "
            f"SELECT :tenant, {_placeholders(columns)}, :insert_time_ns "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE tenant = :tenant AND {key} = :{key}) "
            "ON CONFLICT DO NOTHING",
            params,
        )
        if inserted:
            return True
        existing = self.executor.query(
            f"SELECT {columns} FROM {table} WHERE tenant = :tenant AND {key} = :{key}", params
        )
        if existing and any(existing[0][name] != values[name] for name in existing[0]):
            raise MetadataConflict(f"{key} {values[key]} is already registered with other values")
        return False

    def insert_process(self, tenant: str, process: ProcessInfo) -> bool:
        values = {name: getattr(process, name) for name in ProcessInfo.__slots__}
        values["properties"] = json.dumps(process.properties, sort_keys=True)
        return self._insert("processes", _PROCESS_COLUMNS, "process_id", tenant, values)

    def get_process(self, tenant: str, process_id: str) -> ProcessInfo | None:
        rows = self.executor.query(
            f"SELECT {_PROCESS_COLUMNS} FROM processes "
            "WHERE tenant = :tenant AND process_id = :process_id",
            {"tenant": tenant, "process_id": process_id},
        )
        return _process(rows[0]) if rows else None

    def insert_stream(self, tenant: str, stream: StreamInfo) -> bool:
        values = {
            "stream_id": stream.stream_id,
            "process_id": stream.process_id,
            "tags": json.dumps(list(stream.tags)),
            "layout": json.dumps(layout_to_json(stream.layout), sort_keys=True),
            "properties": json.dumps(stream.properties, sort_keys=True),
        }
        return self._insert("streams", _STREAM_COLUMNS, "stream_id", tenant, values)

    def get_stream(self, tenant: str, stream_id: str) -> StreamInfo | None:
        rows = self.executor.query(
            f"SELECT {_STREAM_COLUMNS} FROM streams "
            "WHERE tenant = :tenant AND stream_id = :stream_id",
            {"tenant": tenant, "stream_id": stream_id},
        )
        return _stream(rows[0]) if rows else None

    def insert_block(self, tenant: str, block: BlockInfo) -> bool:
        values = {name: getattr(block, name) for name in BlockInfo.__slots__}
        return self._insert("blocks", _BLOCK_COLUMNS, "block_id", tenant, values)

    def get_block(self, tenant: str, block_id: str) -> BlockInfo | None:
        rows = self.executor.query(
            f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE tenant = :tenant AND block_id = :block_id",
            {"tenant": tenant, "block_id": block_id},
        )
        return _block(rows[0]) if rows else None

    def list_blocks(
        self, tenant: str, begin_time_ns: int, end_time_ns: int, stream_id: str | None = None
    ) -> list[BlockInfo]:
        """Blocks overlapping [begin, end), by stream and sequence."""
        stream_filter = "AND stream_id = :stream_id " if stream_id else ""
        rows = self.executor.query(
            f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE tenant = :tenant "
            "AND begin_time_ns < :end AND end_time_ns >= :begin "
            f"{stream_filter}ORDER BY stream_id, sequence",
            {"tenant": tenant, "begin": begin_time_ns, "end": end_time_ns, "stream_id": stream_id},
        )
        return [_block(row) for row in rows]

    def blocks_inserted_between(self, begin_ns: int, end_ns: int) -> list[tuple[str, BlockInfo]]:
        # No index on insert_time_ns: the reconciler runs hourly, or once at local start.
        rows = self.executor.query(
            f"SELECT tenant, {_BLOCK_COLUMNS} FROM blocks "
            "WHERE insert_time_ns >= :begin AND insert_time_ns < :end ORDER BY insert_time_ns",
            {"begin": begin_ns, "end": end_ns},
        )
        return [(row["tenant"], _block(row)) for row in rows]

    def record_conversion_failure(
        self, tenant: str, block_id: str, object_key: str, reason: str
    ) -> int:
        params = {
            "tenant": tenant,
            "block_id": block_id,
            "object_key": object_key,
            "reason": reason[:2000],
            "now": time.time_ns(),
        }
        with self.executor.transaction():
            self.executor.execute(
                "INSERT INTO conversion_failures "
                "(tenant, block_id, object_key, attempts, reason, failed_time_ns) "
                "VALUES (:tenant, :block_id, :object_key, 1, :reason, :now) "
                "ON CONFLICT (tenant, block_id) DO UPDATE SET "
                "attempts = conversion_failures.attempts + 1, reason = :reason, "
                "failed_time_ns = :now",
                params,
            )
            rows = self.executor.query(
                "SELECT attempts FROM conversion_failures "
                "WHERE tenant = :tenant AND block_id = :block_id",
                params,
            )
        return int(rows[0]["attempts"])

    def clear_conversion_failure(self, tenant: str, block_id: str) -> None:
        self.executor.execute(
            "DELETE FROM conversion_failures WHERE tenant = :tenant AND block_id = :block_id",
            {"tenant": tenant, "block_id": block_id},
        )

    def conversion_failures(self, tenant: str | None = None) -> list[ConversionFailure]:
        where = "WHERE tenant = :tenant " if tenant is not None else ""
        rows = self.executor.query(
            "SELECT block_id, object_key, attempts, reason, failed_time_ns "
            f"FROM conversion_failures {where}ORDER BY failed_time_ns",
            {"tenant": tenant},
        )
        return [
            ConversionFailure(
                block_id=row["block_id"],
                object_key=row["object_key"],
                attempts=int(row["attempts"]),
                reason=row["reason"],
                failed_time_ns=int(row["failed_time_ns"]),
            )
            for row in rows
        ]
