"""Block encoder: Python column lists in, one compressed transit-v1 block out.

Runs on the SDK's background thread, so it avoids per-event Python work wherever an ``array``
constructor can do it, and needs nothing but the standard library and lz4.
"""

from __future__ import annotations

import json
import struct
import sys
import uuid
import zlib
from array import array
from collections.abc import Mapping, Sequence

import lz4.block

from blocklake.format.header import (
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    HEADER_SIZE,
    BlockHeader,
)
from blocklake.format.schema import EventType

if sys.byteorder != "little":  # pragma: no cover - every platform we ship to is little-endian
    raise ImportError("blocklake's encoder assumes a little-endian machine")

_ARRAY_CODES = {"i64": "q", "u64": "Q", "f64": "d", "u32": "I", "u8": "B", "bool": "B"}


def _pad8(size: int) -> bytes:
    return b"\0" * (-size % 8)


class StringTable:
    """Interns the strings of one block; a reference is the string's index in the table."""

    __slots__ = ("index", "longest")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.longest = 0
        """UTF-8 bytes of the longest string, once ``encode`` has run (the SDK bounds a block's
        expanded text by it)."""

    def refs(self, values: Sequence[str]) -> array:
        index = self.index
        # Python-level work per distinct string only; the per-value lookups run in C.
        for value in dict.fromkeys(values):
            if value not in index:
                index[value] = len(index)
        return array("I", map(index.__getitem__, values))

    def encode(self) -> bytes:
        # A lone surrogate (from os.fsdecode, say) is not UTF-8: replace it, keep the event.
        encoded = [s.encode("utf-8", "replace") for s in self.index]
        self.longest = max(map(len, encoded), default=0)
        offsets = array("i", [0])
        total = 0
        for item in encoded:
            total += len(item)
            offsets.append(total)
        head = struct.pack("<I", len(encoded)) + offsets.tobytes() + b"".join(encoded)
        return head + _pad8(len(head))


def _map_column(values: Sequence[Mapping[str, object] | None], strings: StringTable) -> bytes:
    if not any(values):  # no event has properties: only the offsets, all zero
        raw = bytes(4 * (len(values) + 1))
        return raw + _pad8(len(raw))
    index = strings.index
    offsets = array("i", [0])
    keys: list[int] = []
    items: list[int] = []
    for mapping in values:
        if mapping:
            for key, value in mapping.items():
                keys.append(index.setdefault(str(key), len(index)))
                items.append(index.setdefault(str(value), len(index)))
        offsets.append(len(keys))
    parts = []
    for column in (offsets, array("I", keys), array("I", items)):
        raw = column.tobytes()
        parts.append(raw + _pad8(len(raw)))
    return b"".join(parts)


ATTRIBUTE_TYPES = (str, bool, int, float)
"""Types an attribute value may have; anything else is recorded as its ``str``."""


class Attributes(str):
    """A set of attributes frozen once, as its wire text (a JSON object): recording it costs a
    reference, and encoding it nothing. ``Attributes.of({"route": "/cart", "ok": True})``."""

    __slots__ = ()

    @classmethod
    def of(cls, values: Mapping[str, object] | None) -> Attributes:
        if not values:
            return EMPTY_ATTRIBUTES
        typed = {
            str(key): value if type(value) in ATTRIBUTE_TYPES else str(value)
            for key, value in values.items()
        }
        return cls(json.dumps(typed, separators=(",", ":"), ensure_ascii=False))


EMPTY_ATTRIBUTES = Attributes("")
"""No attributes: the empty string (readers give an empty map)."""


def attributes_texts(values: list | tuple) -> list[str]:
    """Each event's attributes as wire text: a frozen ``Attributes`` as is, a dict as its JSON
    (made once per distinct dict object in the block), None as empty."""
    if values.count(None) == len(values):  # no event has attributes: C speed
        return [""] * len(values)
    made: dict[int, str] = {}
    texts = []
    for value in values:
        if value is None:
            texts.append("")
        elif isinstance(value, str):
            texts.append(value)
        else:
            text = made.get(id(value))
            if text is None:
                text = made[id(value)] = Attributes.of(value)
            texts.append(text)
    return texts


def encode_section(
    event_type: EventType, columns: Sequence[Sequence], strings: StringTable
) -> bytes:
    """One section: every event of ``event_type`` in the block, one column per field in order."""
    if len(columns) != len(event_type.fields):
        raise ValueError(
            f"{event_type.name} has {len(event_type.fields)} fields, got {len(columns)} columns"
        )
    rows = len(columns[0]) if columns else 0
    parts = [struct.pack("<HHI", event_type.id, 0, rows)]
    for field, values in zip(event_type.fields, columns, strict=True):
        if len(values) != rows:
            raise ValueError(f"{event_type.name}.{field.name} has {len(values)} rows, not {rows}")
        if field.type == "map":
            parts.append(_map_column(values, strings))
            continue
        if field.type == "str":
            column = strings.refs(values)
        elif field.type == "attrs":
            column = strings.refs(attributes_texts(values))
        else:
            column = array(_ARRAY_CODES[field.type], values)
        raw = column.tobytes()
        parts.append(raw)
        parts.append(_pad8(len(raw)))
    return b"".join(parts)


def encode_block(
    *,
    stream_id: uuid.UUID,
    sequence: int,
    begin_ticks: int,
    end_ticks: int,
    object_count: int,
    sections: Sequence[bytes],
    strings: StringTable,
    block_id: uuid.UUID | None = None,
    compress: bool = True,
) -> bytes:
    """Header + payload, ready to upload."""
    payload = b"".join([strings.encode(), struct.pack("<II", len(sections), 0), *sections])
    body = lz4.block.compress(payload, store_size=False) if compress else payload
    header = BlockHeader(
        stream_id=stream_id,
        block_id=block_id or uuid.uuid4(),
        sequence=sequence,
        begin_ticks=begin_ticks,
        end_ticks=end_ticks,
        object_count=object_count,
        payload_size=len(body),
        uncompressed_size=len(payload),
        payload_crc32=zlib.crc32(body),
        compression=COMPRESSION_LZ4 if compress else COMPRESSION_NONE,
    )
    block = header.pack() + body
    assert len(block) == HEADER_SIZE + len(body)
    return block
