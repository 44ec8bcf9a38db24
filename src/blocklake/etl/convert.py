"""Converts one raw block to rows of the lake's tables, and exports its process, stream and
block rows, as fragments staged for the committer (``blocklake.lake``): nothing commits here.

Idempotent and safe to run twice: the lake stages a table's rows from one block (or process, or
stream) once; a retry after the stage completed stages nothing, one after a crash halfway
rewrites the same fragments. Only an acknowledged block is converted: the raw object must be the
one its metadata row names, so bytes stored under another key can never replace the accepted
block's rows. The ``blocks`` row is staged last: its mark says the block is converted.

A block that fails is recorded (``conversion_failures`` in the metadata and as a lake table the
tenant can query) with its reason and attempt count; the record goes when it converts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from blocklake.etl import rows
from blocklake.etl.unmatched import unmatched_spans
from blocklake.format.arrow import decode_block
from blocklake.format.header import BlockHeader
from blocklake.format.schema import FIRST_USER_TYPE_ID
from blocklake.format.tables import arrow_schema
from blocklake.lake import Fragment
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import RawKey, parse_raw_key, partition
from blocklake.stores.metadata import MetadataStore
from blocklake.stores.models import ProcessInfo, StreamInfo

if TYPE_CHECKING:
    from blocklake.lake.iceberg import IcebergLake

_log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Failed conversions after which the reconciler stops retrying a block (as SQS stops after its
receive limit and moves the notification to the dead-letter queue)."""


class ConversionError(Exception):
    """The block cannot be converted (unknown stream, corrupt bytes): retrying will not help."""


class ConversionFailed(Exception):
    """A conversion failed and was recorded; ``attempts`` failed so far."""

    def __init__(self, key: str, reason: str, attempts: int | None) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.attempts = attempts


@dataclass
class Conversion:
    block_id: str
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per table."""


FAILURES = "lake/failures/"
"""``lake/failures/tenant=<t>/<block id>``: the block's failure is in the lake table, so that a
success (most conversions) looks it up with one object request, never the database."""


class BlockConverter:
    def __init__(self, blobs: BlobStore, metadata: MetadataStore, lake: IcebergLake) -> None:
        self.blobs = blobs
        self.metadata = metadata
        self.lake = lake

    def convert_recorded(self, key: str) -> Conversion:
        """``convert_key``, recording the outcome: a failure raises ``ConversionFailed`` once
        it is recorded (whatever the error), a success clears an earlier failure."""
        raw = parse_raw_key(key)
        if raw is None:
            raise ConversionError(f"{key!r} is not a raw block key")
        try:
            conversion = self.convert_key(key)
        except ConversionError as error:  # says what is wrong with the block
            reason = str(error).removeprefix(f"{key}: ")
            raise ConversionFailed(key, reason, self._record_failure(raw, key, reason)) from error
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            raise ConversionFailed(key, reason, self._record_failure(raw, key, reason)) from error
        failure_key = _failure_key(raw)
        if self.blobs.exists(failure_key):  # a lake request, so that success never writes SQL
            self.metadata.clear_conversion_failure(raw.tenant, raw.block_id)
            self.lake.upsert("conversion_failures", raw.tenant, "block_id", raw.block_id, None)
            self.blobs.delete([failure_key])
        return conversion

    def _record_failure(self, raw: RawKey, key: str, reason: str) -> int | None:
        """Attempts so far, or None if even the record failed (the database is down, say)."""
        try:
            attempts = self.metadata.record_conversion_failure(
                raw.tenant, raw.block_id, key, reason
            )
            row = {
                "block_id": raw.block_id,
                "stream_id": raw.stream_id,
                "failed_time": time.time_ns() // 1000,
                "attempts": attempts,
                "reason": reason[:2000],
            }
            self.blobs.put(_failure_key(raw), b"")
            self.lake.upsert(
                "conversion_failures",
                raw.tenant,
                "block_id",
                raw.block_id,
                _single_row("conversion_failures", row),
            )
        except Exception:
            _log.exception("could not record the failed conversion of %s", key)
            return None
        return attempts

    def convert_key(self, key: str) -> Conversion:
        raw = parse_raw_key(key)
        if raw is None:
            raise ConversionError(f"{key!r} is not a raw block key")
        block = self.metadata.get_block(raw.tenant, raw.block_id)
        if block is None or block.object_key != key:
            raise ConversionError(f"{key}: not the object of an acknowledged block")
        try:
            stream = self.metadata.get_stream(raw.tenant, raw.stream_id)
        except ValueError as error:  # a layout registered before layouts were checked
            raise ConversionError(f"{key}: {error}") from error
        if stream is None:
            raise ConversionError(f"{key}: stream {raw.stream_id} is not registered")
        process = self.metadata.get_process(raw.tenant, stream.process_id)
        if process is None:
            raise ConversionError(f"{key}: process {stream.process_id} is not registered")
        try:
            decoded = decode_block(self.blobs.get(key), stream.layout)
        except ValueError as error:
            raise ConversionError(f"{key}: {error}") from error
        tenant, block_id = raw.tenant, raw.block_id
        if str(decoded.header.block_id) != block_id:
            raise ConversionError(f"{key}: holds block {decoded.header.block_id}, not {block_id}")
        begin_ns = process.time_ns(decoded.header.begin_ticks)
        conversion = Conversion(block_id)
        tables = self._event_tables(decoded.sections, process, stream, block_id, decoded.header)
        for table, data in tables:
            if data.num_rows:
                fragment = Fragment(partition(begin_ns), data, (block_id,))
                self.lake.append_fragments(table, tenant, [fragment])
                conversion.rows[table] = data.num_rows
        self._export_metadata(tenant, process, stream, decoded.header)
        return conversion

    @staticmethod
    def _event_tables(
        sections: dict[str, pa.Table],
        process: ProcessInfo,
        stream: StreamInfo,
        block_id: str,
        header: BlockHeader,
    ) -> Iterator[tuple[str, pa.Table]]:
        """(table name, rows) of each lake table the block's events go to."""
        ids = (process, stream.stream_id, block_id)
        if "log_entry" in sections:
            yield "log_entries", rows.log_entries(sections["log_entry"], *ids)
        if "measure" in sections:
            yield "measures", rows.measures(sections["measure"], *ids)
        if "attachment" in sections:
            yield "attachments", rows.attachments(sections["attachment"], *ids)
        for table, prefix in (("thread_spans", "thread_span"), ("async_spans", "async_span")):
            paired = rows.spans(
                table, sections.get(f"{prefix}_begin"), sections.get(f"{prefix}_end"), *ids
            )
            if paired is not None:
                yield table, paired
        block_ticks = (header.begin_ticks, header.end_ticks)
        unpaired = unmatched_spans(sections, *ids, header.sequence, block_ticks)
        if unpaired is not None:
            yield "unmatched_spans", unpaired
        # User-defined types, each to a table of its own; built-in types this code does not
        # know (a newer SDK's) stay in the raw block only.
        for event_type in stream.layout.values():
            if event_type.id >= FIRST_USER_TYPE_ID and event_type.name in sections:
                section = sections[event_type.name]
                yield (
                    rows.user_table_name(event_type),
                    rows.user_events(section, event_type, *ids),
                )

    def _export_metadata(
        self, tenant: str, process: ProcessInfo, stream: StreamInfo, header: BlockHeader
    ) -> None:
        """Processes, streams and blocks as tables too, so SQL can join them with events."""
        started = partition(process.start_time_ns)
        for table, source, rows_of in (
            ("processes", process.process_id, lambda: _process_table(process)),
            ("streams", stream.stream_id, lambda: _stream_table(stream)),
        ):
            if not self.lake.appended(table, tenant, [source]):  # once per process or stream
                self.lake.append_fragments(table, tenant, [Fragment(started, rows_of(), (source,))])
        block = Fragment(
            partition(process.time_ns(header.begin_ticks)),
            _block_table(process, stream, header),
            (str(header.block_id),),
        )
        self.lake.append_fragments("blocks", tenant, [block])


def _failure_key(raw: RawKey) -> str:
    return f"{FAILURES}tenant={raw.tenant}/{raw.block_id}"


def _micros(time_ns: int) -> int:
    """The lake's timestamps are microseconds (schemas/tables.toml)."""
    return time_ns // 1000


def _single_row(table: str, values: dict) -> pa.Table:
    return pa.Table.from_pylist([values], schema=arrow_schema(table))


def _process_table(process: ProcessInfo) -> pa.Table:
    return _single_row(
        "processes",
        {
            "process_id": process.process_id,
            "exe": process.exe,
            "username": process.username,
            "computer": process.computer,
            "start_time": _micros(process.start_time_ns),
            "parent_process_id": process.parent_process_id,
            "properties": process.properties,
        },
    )


def _stream_table(stream: StreamInfo) -> pa.Table:
    return _single_row(
        "streams",
        {
            "stream_id": stream.stream_id,
            "process_id": stream.process_id,
            "tags": list(stream.tags),
            "properties": stream.properties,
        },
    )


def _block_table(process: ProcessInfo, stream: StreamInfo, header: BlockHeader) -> pa.Table:
    return _single_row(
        "blocks",
        {
            "block_id": str(header.block_id),
            "stream_id": stream.stream_id,
            "process_id": process.process_id,
            "sequence": header.sequence,
            "begin_time": _micros(process.time_ns(header.begin_ticks)),
            "end_time": _micros(process.time_ns(header.end_ticks)),
            "object_count": header.object_count,
            "payload_size": header.payload_size,
        },
    )
