"""The ingestion use cases, independent of HTTP: validate, store the block as sent, record metadata.

Everything a block holds is checked before anything is stored (``blocklake.format.check``: the
header, the CRC, the payload within its budget; here: times on the process's clock), so what
ingest acknowledges, conversion can convert. Then the metadata row decides: it is inserted if
absent (a conflicting upload, such as a known block id on another stream, is refused there and
stores nothing), and only then is the payload stored, with a conditional write. A retry after a
failure at either step completes the missing step and changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from blocklake.errors import ClientError
from blocklake.format.check import BlockSummary, check_block
from blocklake.format.header import BlockHeader, FormatError, parse_header
from blocklake.format.schema import (
    FIRST_USER_TYPE_ID,
    SchemaError,
    check_user_type,
    layout_from_json,
)
from blocklake.ingest import user_types, validate
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import MetadataConflict, MetadataStore
from blocklake.stores.models import BlockInfo, ProcessInfo, StreamInfo


@dataclass(frozen=True)
class StoredBlock:
    block_id: str
    object_key: str
    duplicate: bool


class IngestService:
    def __init__(self, blobs: BlobStore, metadata: MetadataStore, max_block_bytes: int) -> None:
        self.blobs = blobs
        self.metadata = metadata
        self.max_block_bytes = max_block_bytes

    def register_process(self, tenant: str, document: dict) -> bool:
        process = ProcessInfo(
            process_id=validate.uuid_text(document, "process_id"),
            exe=validate.text(document, "exe"),
            username=validate.text(document, "username"),
            computer=validate.text(document, "computer"),
            start_time_ns=validate.time_ns(document, "start_time_ns"),
            start_ticks=validate.int64(document, "start_ticks"),
            tick_frequency=validate.int64(document, "tick_frequency", low=1),
            parent_process_id=validate.uuid_text(document, "parent_process_id", optional=True),
            properties=validate.string_map(document, "properties"),
        )
        return self._insert(self.metadata.insert_process, tenant, process)

    def register_stream(self, tenant: str, document: dict) -> bool:
        process_id = validate.uuid_text(document, "process_id")
        tags = validate.string_list(document, "tags")
        try:
            layout = layout_from_json(document.get("layout"))
            for event_type in layout.values():
                if event_type.id >= FIRST_USER_TYPE_ID:
                    check_user_type(event_type)  # at registration only: stored layouts still read
        except SchemaError as error:
            raise ClientError(400, "invalid_layout", f"field 'layout': {error}") from None
        if self.metadata.get_process(tenant, process_id) is None:
            raise ClientError(404, "unknown_process", f"process {process_id} is not registered")
        user_types.check_field_types(self.blobs, tenant, layout)
        stream = StreamInfo(
            stream_id=validate.uuid_text(document, "stream_id"),
            process_id=process_id,
            tags=tuple(tags),
            layout=layout,
            properties=validate.string_map(document, "properties"),
        )
        return self._insert(self.metadata.insert_stream, tenant, stream)

    @staticmethod
    def _insert(insert, tenant: str, row: object) -> bool:
        try:
            return insert(tenant, row)
        except MetadataConflict as error:
            raise ClientError(409, "conflict", str(error)) from None

    def store_block(self, tenant: str, data: bytes) -> StoredBlock:
        """Validates and stores one block; ``ClientError`` (4xx) for anything wrong with it."""
        if len(data) > self.max_block_bytes:
            raise ClientError(
                413,
                "block_too_large",
                f"block is {len(data)} bytes; the limit is {self.max_block_bytes}",
            )
        block = self.validated_block(tenant, data)
        inserted = self._insert(self.metadata.insert_block, tenant, block)
        created = self.blobs.put_if_absent(block.object_key, data)
        return StoredBlock(block.block_id, block.object_key, duplicate=not (created or inserted))

    def validated_block(self, tenant: str, data: bytes) -> BlockInfo:
        """The metadata row of a block, once every part of it is checked; stores nothing."""
        try:
            header = parse_header(data)
        except FormatError as error:
            raise ClientError(400, "invalid_block", str(error)) from None
        stream_id = str(header.stream_id)
        try:
            stream = self.metadata.get_stream(tenant, stream_id)
        except SchemaError as error:  # registered before layouts were checked as they are now
            raise ClientError(409, "invalid_layout", f"stream {stream_id}: {error}") from None
        if stream is None:
            raise ClientError(
                404,
                "unknown_stream",
                f"stream {stream_id} is not registered; POST /v1/streams first",
            )
        process = self.metadata.get_process(tenant, stream.process_id)
        if process is None:  # pragma: no cover - a stream cannot be registered without it
            raise ClientError(
                404, "unknown_process", f"process {stream.process_id} is not registered"
            )
        try:
            _, _, summary = check_block(data, stream.layout)
        except FormatError as error:
            raise ClientError(400, "invalid_block", str(error)) from None
        _check_times(header, summary, process)
        _check_range(header, summary, process)
        return self._block_info(tenant, header, stream, process)

    @staticmethod
    def _block_info(
        tenant: str, header: BlockHeader, stream: StreamInfo, process: ProcessInfo
    ) -> BlockInfo:
        begin_ns = process.time_ns(header.begin_ticks)
        block_id = str(header.block_id)
        return BlockInfo(
            block_id=block_id,
            stream_id=stream.stream_id,
            process_id=stream.process_id,
            sequence=header.sequence,
            begin_ticks=header.begin_ticks,
            end_ticks=header.end_ticks,
            begin_time_ns=begin_ns,
            end_time_ns=process.time_ns(header.end_ticks),
            object_count=header.object_count,
            payload_size=header.payload_size,
            object_key=raw_key(tenant, begin_ns, stream.stream_id, block_id),
        )


MAX_BLOCK_SPAN_NS = 3600 * 1_000_000_000
"""Longest time from a block's ``begin_ticks`` to its ``end_ticks``: a block lands in the hour
partition of its begin, and queries look one hour back for the rows running past it (the SDK
cuts a block every second)."""


def _check_range(header: BlockHeader, summary: BlockSummary, process: ProcessInfo) -> None:
    """Every event lies within the header's ``begin_ticks``..``end_ticks``, span begins
    excepted below it (the begins of spans open at the block's start are replayed with their
    original ticks), and that range covers at most ``MAX_BLOCK_SPAN_NS``."""
    if summary.max_ticks is not None and summary.max_ticks > header.end_ticks:
        raise validate.invalid(
            "end_ticks",
            f"{header.end_ticks} is before an event of the block (ticks {summary.max_ticks}): "
            "events must lie within begin_ticks..end_ticks",
        )
    if summary.min_event_ticks is not None and summary.min_event_ticks < header.begin_ticks:
        raise validate.invalid(
            "begin_ticks",
            f"{header.begin_ticks} is after an event of the block (ticks "
            f"{summary.min_event_ticks}): events must lie within begin_ticks..end_ticks (only "
            "replayed span begins may be older)",
        )
    span = process.time_ns(header.end_ticks) - process.time_ns(header.begin_ticks)
    if span > MAX_BLOCK_SPAN_NS:
        raise validate.invalid(
            "end_ticks",
            f"the block covers {span} ns from begin_ticks to end_ticks, over one hour "
            f"({MAX_BLOCK_SPAN_NS} ns): cut it into shorter blocks",
        )


def _check_times(header: BlockHeader, summary: BlockSummary, process: ProcessInfo) -> None:
    """Every tick of the block, on the process's clock, must land between 1970 and 2200, and
    its distance from the clock's start must fit the int64 arithmetic of conversion."""
    for name, ticks in (
        ("begin_ticks", header.begin_ticks),
        ("end_ticks", header.end_ticks),
        ("ticks of an event", summary.min_ticks),
        ("ticks of an event", summary.max_ticks),
    ):
        if ticks is None:
            continue
        moment = process.time_ns(ticks)
        if not validate.MIN_TIME_NS <= moment < validate.MAX_TIME_NS or not (
            validate.INT64_MIN <= ticks - process.start_ticks <= validate.INT64_MAX
        ):
            raise ClientError(
                400,
                "invalid_block",
                f"{name} {ticks} is {moment} ns on the process clock: not between 1970 and 2200",
            )
