"""The ingestion use cases, independent of HTTP: validate, store the block as sent, record metadata.

Order matters for retries: the payload is stored first (a conditional write, so never twice),
then its metadata row is inserted if absent. A retry after a failure at either step completes
the missing step and changes nothing else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from blocklake.errors import ClientError
from blocklake.format.header import BlockHeader, FormatError, parse_header
from blocklake.format.schema import SchemaError, layout_from_json
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import MetadataConflict, MetadataStore
from blocklake.stores.models import BlockInfo, ProcessInfo, StreamInfo


def _field(document: dict, name: str, kind: type | tuple[type, ...], *, optional: bool = False):
    value = document.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        state = "missing" if name not in document else f"{type(value).__name__}"
        raise ClientError(400, "invalid_field", f"field {name!r}: expected {expected}, got {state}")
    return value


def _uuid(document: dict, name: str, *, optional: bool = False) -> str | None:
    value = _field(document, name, str, optional=optional)
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ClientError(
            400, "invalid_field", f"field {name!r}: {value!r} is not a UUID"
        ) from None


def _string_map(document: dict, name: str) -> dict[str, str]:
    value = document.get(name) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ClientError(400, "invalid_field", f"field {name!r}: expected an object of strings")
    return value


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
            process_id=_uuid(document, "process_id"),
            exe=_field(document, "exe", str),
            username=_field(document, "username", str),
            computer=_field(document, "computer", str),
            start_time_ns=_field(document, "start_time_ns", int),
            start_ticks=_field(document, "start_ticks", int),
            tick_frequency=_field(document, "tick_frequency", int),
            parent_process_id=_uuid(document, "parent_process_id", optional=True),
            properties=_string_map(document, "properties"),
        )
        if process.tick_frequency <= 0:
            raise ClientError(400, "invalid_field", "field 'tick_frequency': must be positive")
        return self._insert(self.metadata.insert_process, tenant, process)

    def register_stream(self, tenant: str, document: dict) -> bool:
        process_id = _uuid(document, "process_id")
        tags = _field(document, "tags", list)
        if not all(isinstance(tag, str) for tag in tags):
            raise ClientError(400, "invalid_field", "field 'tags': expected a list of strings")
        try:
            layout = layout_from_json(document.get("layout"))
        except SchemaError as error:
            raise ClientError(400, "invalid_layout", f"field 'layout': {error}") from None
        if self.metadata.get_process(tenant, process_id) is None:
            raise ClientError(404, "unknown_process", f"process {process_id} is not registered")
        stream = StreamInfo(
            stream_id=_uuid(document, "stream_id"),
            process_id=process_id,
            tags=tuple(tags),
            layout=layout,
            properties=_string_map(document, "properties"),
        )
        return self._insert(self.metadata.insert_stream, tenant, stream)

    @staticmethod
    def _insert(insert, tenant: str, row: object) -> bool:
        try:
            return insert(tenant, row)
        except MetadataConflict as error:
            raise ClientError(409, "conflict", str(error)) from None

    def store_block(self, tenant: str, data: bytes) -> StoredBlock:
        if len(data) > self.max_block_bytes:
            raise ClientError(
                413,
                "block_too_large",
                f"block is {len(data)} bytes; the limit is {self.max_block_bytes}",
            )
        try:
            header = parse_header(data)
        except FormatError as error:
            raise ClientError(400, "invalid_block", str(error)) from None
        stream_id = str(header.stream_id)
        stream = self.metadata.get_stream(tenant, stream_id)
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
        block = self._block_info(tenant, header, stream, process)
        created = self.blobs.put_if_absent(block.object_key, data)
        inserted = self._insert(self.metadata.insert_block, tenant, block)
        return StoredBlock(block.block_id, block.object_key, duplicate=not (created or inserted))

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
