"""Block decoder: one transit-v1 block to one Arrow table per event type, without copying columns.

Fixed-width columns and the string table become Arrow arrays over slices of the decompressed
payload (``pa.Array.from_buffers``); string columns become dictionary arrays whose dictionary is
the block's string table. Everything is bounds-checked first: a malformed block raises
``FormatError``, it never reads outside the payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from blocklake.format.check import DEFAULT_BUDGET, BlockSummary, Budget, check_block
from blocklake.format.header import BlockHeader, FormatError
from blocklake.format.schema import FIELD_WIDTHS, REFERENCE_TYPES, Layout

ARROW_TYPES = {
    "i64": pa.int64(),
    "u64": pa.uint64(),
    "f64": pa.float64(),
    "u32": pa.uint32(),
    "u8": pa.uint8(),
    "bool": pa.uint8(),
    "str": pa.uint32(),
    "attrs": pa.uint32(),
}


@dataclass(frozen=True, slots=True)
class DecodedBlock:
    header: BlockHeader
    sections: dict[str, pa.Table]
    """Events of each type present in the block, by event type name, in recording order; a
    ``str`` or ``attrs`` column is a dictionary array over the block's string table."""
    summary: BlockSummary


def _align8(size: int) -> int:
    return size + (-size % 8)


class _Reader:
    """Walks the payload, handing out bounds-checked zero-copy slices."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.buffer = pa.py_buffer(payload)
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        self._need(size, fmt)
        values = struct.unpack_from(fmt, self.payload, self.pos)
        self.pos += size
        return values

    def take(self, size: int, what: str, *, pad: bool = True) -> pa.Buffer:
        """A slice of ``size`` bytes; with ``pad``, the position moves on to an 8-byte boundary."""
        self._need(size, what)
        sliced = self.buffer.slice(self.pos, size)
        self.pos = _align8(self.pos + size) if pad else self.pos + size
        return sliced

    def _need(self, size: int, what: str) -> None:
        if self.pos + size > len(self.payload):
            raise FormatError(f"payload ends inside {what} (offset {self.pos}, {size} bytes)")


def _string_table(reader: _Reader) -> pa.Array:
    (count,) = reader.unpack("<I")
    offsets = reader.take(4 * (count + 1), "string table offsets", pad=False)
    (size,) = struct.unpack_from("<i", offsets, 4 * count)
    if size < 0:
        raise FormatError("string table has a negative size")
    data = reader.take(size, "string table bytes")
    try:
        strings = pa.Array.from_buffers(pa.string(), count, [None, offsets, data])
        strings.validate(full=True)
    except pa.ArrowInvalid as error:
        raise FormatError(f"string table is invalid: {error}") from error
    return strings


def _dictionary(indices: pa.Array, strings: pa.Array, what: str) -> pa.DictionaryArray:
    try:
        return pa.DictionaryArray.from_arrays(indices, strings, safe=True)
    except (pa.ArrowInvalid, pa.ArrowIndexError) as error:
        raise FormatError(f"{what} refers outside the string table: {error}") from error


def _map_column(reader: _Reader, rows: int, strings: pa.Array, what: str) -> pa.MapArray:
    offsets = pa.Array.from_buffers(pa.int32(), rows + 1, [None, reader.take(4 * (rows + 1), what)])
    count = offsets[-1].as_py()
    if count < 0 or offsets[0].as_py() != 0:
        raise FormatError(f"{what} has invalid offsets")
    keys = pa.Array.from_buffers(pa.uint32(), count, [None, reader.take(4 * count, what)])
    values = pa.Array.from_buffers(pa.uint32(), count, [None, reader.take(4 * count, what)])
    try:
        column = pa.MapArray.from_arrays(
            offsets,
            _dictionary(keys, strings, what).cast(pa.string()),
            _dictionary(values, strings, what).cast(pa.string()),
        )
        column.validate(full=True)  # offsets must rise within the entries
        return column
    except pa.ArrowInvalid as error:
        raise FormatError(f"{what} is invalid: {error}") from error


def decode_payload(payload: bytes, layout: Layout) -> dict[str, pa.Table]:
    reader = _Reader(payload)
    strings = _string_table(reader)
    section_count, _ = reader.unpack("<II")
    sections: dict[str, pa.Table] = {}
    for _ in range(section_count):
        type_id, _, rows = reader.unpack("<HHI")
        event_type = layout.get(type_id)
        if event_type is None:
            raise FormatError(f"section of event type {type_id}, which the stream's layout lacks")
        if event_type.name in sections:
            raise FormatError(f"event type {event_type.name!r} has two sections")
        columns = []
        for field in event_type.fields:
            what = f"{event_type.name}.{field.name}"
            if field.type == "map":
                columns.append(_map_column(reader, rows, strings, what))
                continue
            data = reader.take(rows * FIELD_WIDTHS[field.type], what)
            array = pa.Array.from_buffers(ARROW_TYPES[field.type], rows, [None, data])
            if field.type in REFERENCE_TYPES:
                array = _dictionary(array, strings, what)
            elif field.type == "bool":
                array = pc.not_equal(array, 0)
            columns.append(array)
        sections[event_type.name] = pa.Table.from_arrays(
            columns, names=[field.name for field in event_type.fields]
        )
    return sections


def decode_block(data: bytes, layout: Layout, budget: Budget = DEFAULT_BUDGET) -> DecodedBlock:
    """Checks the whole block within ``budget`` (``blocklake.format.check``), then decodes it;
    raises ``FormatError`` naming what is wrong."""
    header, payload, summary = check_block(data, layout, budget, complete=False)
    return DecodedBlock(header, decode_payload(payload, layout), summary)
