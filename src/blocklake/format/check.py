"""Whole-block validation within a budget, with the standard library and lz4 only.

Ingest runs it before acknowledging a block (its Lambda carries no pyarrow) and the decoder
runs it before building any Arrow array, so a block that passes cannot make conversion use more
memory than its budget allows: the payload is decompressed at most once and to a bounded size,
every count is checked against the bytes that hold it, every string reference against the
string table, and the text the rows would expand to (a row per reference, a map entry per key
and value) is summed before anything is expanded.
"""

from __future__ import annotations

import codecs
import itertools
import operator
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass

import lz4.block

from blocklake.format.header import COMPRESSION_LZ4, BlockHeader, FormatError, parse_header
from blocklake.format.media_type import valid_attachment_id, valid_sha256
from blocklake.format.schema import FIELD_WIDTHS, REFERENCE_TYPES, Layout

if sys.byteorder != "little":  # pragma: no cover - every platform we ship to is little-endian
    raise ImportError("blocklake's block checks assume a little-endian machine")

_ARRAY_CODES = {
    "i64": "q",
    "u64": "Q",
    "f64": "d",
    "u32": "I",
    "u8": "B",
    "bool": "B",
    "str": "I",
    "attrs": "I",
}
SPAN_TYPES = {
    "thread_span_begin": "thread_span_end",
    "async_span_begin": "async_span_end",
}
"""Built-in span begin types and the end type each pairs with (by ``span_id``)."""
_SPAN_NAMES = frozenset({*SPAN_TYPES, *SPAN_TYPES.values()})
SPAN_FIELD_LIMITS = {
    "span_id": 2**63 - 1,
    "parent_span_id": 2**63 - 1,
    "depth": 2**31 - 1,
    "line": 2**31 - 1,
}
"""Largest value of the unsigned fields of span events: the lake's columns are signed."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What one block may cost to convert. The defaults keep a conversion's peak memory within
    a few hundred MiB whatever the block (measured: tests/format/test_budget.py)."""

    max_payload_bytes: int = 32 * 1024 * 1024
    """Largest decompressed payload."""
    max_ratio: int = 64
    """Largest decompressed / compressed size ratio, above ``ratio_floor_bytes``: real blocks
    compress 2-10 times; a payload of zeros compresses 255 times."""
    ratio_floor_bytes: int = 1024 * 1024
    """A payload this small may have any ratio."""
    max_expanded_bytes: int = 128 * 1024 * 1024
    """Text bytes the rows hold once every string reference and map entry is resolved."""
    max_map_bytes: int = 16 * 1024 * 1024
    """Text bytes of the map entries alone: conversion builds maps of plain strings (Parquet
    has no dictionary-encoded map), which costs about six times their text at its peak."""

    def payload_limit(self, compressed: int) -> int:
        return min(self.max_payload_bytes, max(self.ratio_floor_bytes, self.max_ratio * compressed))


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """What a valid block holds, for checks that need more than the block (its process's clock)."""

    rows: dict[str, int]
    """Rows of each event type present."""
    min_ticks: int | None
    """Smallest ``ticks`` of any event (replayed span begins included), None if no events."""
    max_ticks: int | None
    expanded_bytes: int
    """Text and value bytes the rows hold once every reference is resolved (maps included), or
    a bound above it when that bound is well within the budget."""
    map_bytes: int
    """Text bytes of the map entries."""
    min_event_ticks: int | None = None
    """Smallest ``ticks`` of any event but span begins (which may be replayed, with older
    ticks), None if there are none."""


def _align8(size: int) -> int:
    return size + (-size % 8)


def decompress(data: bytes, header: BlockHeader, budget: Budget = DEFAULT_BUDGET) -> bytes:
    """The decompressed payload, after checking the CRC and that the announced size is within
    the budget, so nothing large is allocated for a block that lies."""
    body = memoryview(data)[header.header_size :]
    if zlib.crc32(body) != header.payload_crc32:
        raise FormatError("payload_crc32 does not match the payload: the block is corrupt")
    limit = budget.payload_limit(len(body))
    if header.compression != COMPRESSION_LZ4:
        if len(body) > limit:
            raise FormatError(f"payload is {len(body)} bytes, over the {limit}-byte limit")
        if header.uncompressed_size != len(body):
            raise FormatError(
                f"uncompressed_size {header.uncompressed_size} is not the size of the "
                f"uncompressed payload ({len(body)} bytes)"
            )
        return bytes(body)
    if header.uncompressed_size > limit:
        raise FormatError(
            f"uncompressed_size {header.uncompressed_size} is over the limit for a "
            f"{len(body)}-byte payload ({limit} bytes)"
        )
    try:
        payload = lz4.block.decompress(body, uncompressed_size=header.uncompressed_size)
    except (lz4.block.LZ4BlockError, ValueError, OverflowError, MemoryError) as error:
        raise FormatError(
            f"lz4 payload does not decompress to uncompressed_size {header.uncompressed_size} "
            f"bytes: {error}"
        ) from error
    if len(payload) != header.uncompressed_size:
        raise FormatError(
            f"payload decompressed to {len(payload)} bytes, uncompressed_size says "
            f"{header.uncompressed_size}"
        )
    return payload


class _Walker:
    """Reads the payload front to back; every read is bounds-checked and copies at most the
    bytes it names (which the payload already holds, so at most the payload's size)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = memoryview(payload)
        self.pos = 0

    def unpack(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        self._need(size, what)
        values = struct.unpack_from(fmt, self.payload, self.pos)
        self.pos += size
        return values

    def array(self, code: str, count: int, what: str, *, pad: bool = True) -> array:
        values = array(code)
        size = values.itemsize * count
        self._need(size, what)
        values.frombytes(self.payload[self.pos : self.pos + size])
        self.pos = self._pad(self.pos + size, what) if pad else self.pos + size
        return values

    def bytes(self, size: int, what: str) -> memoryview:
        self._need(size, what)
        data = self.payload[self.pos : self.pos + size]
        self.pos = self._pad(self.pos + size, what)
        return data

    def _pad(self, end: int, what: str) -> int:
        """The next multiple of 8 from ``end``, after checking the padding bytes are zero."""
        aligned = _align8(end)
        if any(self.payload[end:aligned]):
            raise FormatError(f"padding after {what} (offset {end}) is not zero bytes")
        return aligned

    def _need(self, size: int, what: str) -> None:
        if size < 0 or self.pos + size > len(self.payload):
            raise FormatError(f"payload ends inside {what} (offset {self.pos}, {size} bytes)")


def _rising(offsets: array) -> bool:
    return all(map(operator.le, offsets, offsets[1:]))


def _string_lengths(walker: _Walker) -> array:
    """Byte length of each string of the table, after checking it is valid UTF-8."""
    (count,) = walker.unpack("<I", "string table count")
    offsets = walker.array("i", count + 1, "string table offsets", pad=False)
    if offsets[0] != 0 or not _rising(offsets):
        raise FormatError("string table offsets must start at 0 and never decrease")
    text = walker.bytes(offsets[-1], "string table bytes")
    # Strict (no invalid sequence, no encoded surrogate), a MiB at a time: decoding the whole
    # table at once would hold up to four times its size as a str.
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(text), 1 << 20):
            decoder.decode(text[start : start + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise FormatError(f"string table is not valid UTF-8: {error.reason}") from None
    # Valid as a whole, so each string is valid when none starts inside a character.
    if any(text[offset] & 0xC0 == 0x80 for offset in offsets if offset < len(text)):
        raise FormatError("string table splits a UTF-8 character between two strings")
    return array("q", map(operator.sub, offsets[1:], offsets[:-1]))


def _refs_bytes(
    refs: array, lengths: array, what: str, *, longest: int | None, in_range: bool
) -> int:
    """Text bytes the references expand to; with ``longest`` (the longest string's length), a
    bound instead: ``longest`` per reference. ``in_range`` checks each reference first."""
    if in_range and refs and max(refs) >= len(lengths):
        raise FormatError(f"{what} refers outside the string table ({len(lengths)} strings)")
    if longest is not None:
        return len(refs) * longest
    try:
        return sum(map(lengths.__getitem__, refs))
    except IndexError:
        raise FormatError(f"{what} refers outside the string table") from None


def check_payload(
    payload: bytes,
    layout: Layout,
    object_count: int,
    budget: Budget = DEFAULT_BUDGET,
    *,
    complete: bool = True,
) -> BlockSummary:
    """Checks a decompressed payload against the stream's layout and the header's
    ``object_count``; raises ``FormatError`` naming the part that is wrong. Without
    ``complete``, string references are not each checked against the table and the ticks'
    range is not computed (``min_ticks``/``max_ticks`` are None): the Arrow decoder checks
    references itself, and conversion needs no range; that halves the time of this check."""
    walker = _Walker(payload)
    lengths = _string_lengths(walker)
    text = _string_text(walker, lengths)
    section_count, reserved = walker.unpack("<II", "section count")
    if reserved:
        raise FormatError(f"payload field reserved (after section_count) is {reserved}: expected 0")
    if section_count > len(layout):
        raise FormatError(
            f"section count {section_count} is more than the {len(layout)} types of the layout"
        )
    rows: dict[str, int] = {}
    expanded = maps = 0
    low = high = event_low = None
    maps_to_check: list[tuple[array, array, str]] = []
    span_columns: dict[tuple[str, str], array] = {}
    attachment_columns: dict[str, array] = {}
    # A quick bound first: if every possible reference (4 payload bytes each) to the longest
    # string, with the fixed-width values and the map budget, fits the budget, no column of
    # references needs its exact sum (a third of the check's time on a typical block).
    longest = max(lengths, default=0)
    bound = len(payload) + len(payload) // 4 * longest + budget.max_map_bytes
    quick = longest if bound <= budget.max_expanded_bytes else None
    for _ in range(section_count):
        type_id, reserved, count = walker.unpack("<HHI", "section header")
        if reserved:
            raise FormatError(
                f"section of type {type_id}: field reserved is {reserved}: expected 0"
            )
        event_type = layout.get(type_id)
        if event_type is None:
            raise FormatError(f"section of event type {type_id}, which the stream's layout lacks")
        if event_type.name in rows:
            raise FormatError(f"event type {event_type.name!r} has two sections")
        rows[event_type.name] = count
        for field in event_type.fields:
            what = f"{event_type.name}.{field.name}"
            if field.type == "map":
                offsets = walker.array("i", count + 1, what)
                if offsets[0] != 0 or not _rising(offsets):
                    raise FormatError(f"{what} offsets must start at 0 and never decrease")
                for part in ("keys", "values"):
                    refs = walker.array("I", offsets[-1], f"{what} {part}")
                    maps += _refs_bytes(
                        refs, lengths, f"{what} {part}", longest=None, in_range=complete
                    )
                    if part == "keys":
                        keys = refs
                if maps > budget.max_map_bytes:
                    raise FormatError(
                        f"{what}: map entries hold over {budget.max_map_bytes} bytes of text: "
                        "split the block"
                    )
                if complete:  # after every budget check: see below
                    maps_to_check.append((keys, offsets, what))
                continue
            values = walker.array(_ARRAY_CODES[field.type], count, what)
            expanded += FIELD_WIDTHS[field.type] * count
            if field.type == "bool" and values and max(values) > 1:
                raise FormatError(f"{what} holds {max(values)}: a bool is 0 or 1")
            if field.type in REFERENCE_TYPES:
                expanded += _refs_bytes(values, lengths, what, longest=quick, in_range=complete)
            elif complete and field.name == "ticks" and field.type == "i64" and values:
                low = min(values) if low is None else min(low, min(values))
                high = max(values) if high is None else max(high, max(values))
                if event_type.name not in SPAN_TYPES:
                    event_low = min(values) if event_low is None else min(event_low, min(values))
            if event_type.name == "attachment" and field.name in _ATTACHMENT_CHECKS and values:
                attachment_columns[field.name] = values
            if event_type.name in _SPAN_NAMES and values:
                _check_span_field(field.name, values, what)
                if complete and field.name in ("ticks", "span_id"):
                    span_columns[(event_type.name, field.name)] = values
        if expanded + maps > budget.max_expanded_bytes:
            raise FormatError(
                f"{event_type.name}: rows expand to over {budget.max_expanded_bytes} bytes of "
                "text and values: split the block"
            )
    if walker.pos != len(payload):
        raise FormatError(
            f"payload has {len(payload) - walker.pos} bytes after its last section: "
            "uncompressed_size or a count is wrong"
        )
    _check_counts(rows, object_count)
    for keys, offsets, what in maps_to_check:
        _check_unique_keys(keys, offsets, lengths, text, what)
    if span_columns:
        _check_span_ends(span_columns)
    if attachment_columns:
        _check_attachments(attachment_columns, lengths, text)
    return BlockSummary(rows, low, high, expanded + maps, maps, event_low)


def _string_text(walker: _Walker, lengths: array) -> memoryview:
    """The string table's UTF-8 bytes (``_string_lengths`` has just read past them)."""
    size = sum(lengths)
    start = 4 + 4 * (len(lengths) + 1)
    return walker.payload[start : start + size]


def _check_unique_keys(
    keys: array, offsets: array, lengths: array, text: memoryview, what: str
) -> None:
    """No map row repeats a key: readers would keep either value. Rows compare references,
    which is enough once the strings used as keys are known distinct (a writer interns each
    string once, but a forged table may repeat one)."""
    used = set(keys)
    if len(used) > 1:
        starts = array("q", [0])
        for length in lengths:
            starts.append(starts[-1] + length)
        texts = {bytes(text[starts[ref] : starts[ref + 1]]) for ref in used}
        if len(texts) != len(used):
            raise FormatError(f"{what} keys: the string table repeats a key's text")
    for row, (start, end) in enumerate(itertools.pairwise(offsets)):
        if end - start > 1 and len(set(keys[start:end])) != end - start:
            raise FormatError(f"{what} row {row} repeats a key: each key appears once per map")


def _check_span_ends(columns: dict[tuple[str, str], array]) -> None:
    """Each span end closes a begin of the same block (a block decodes alone: the begins of
    spans open at its start are replayed), at or after that begin's ticks."""
    empty = array("q")
    for begin_type, end_type in SPAN_TYPES.items():
        end_ids = columns.get((end_type, "span_id"), empty)
        if not end_ids:
            continue
        begin_ticks = dict(
            zip(
                columns.get((begin_type, "span_id"), empty),
                columns.get((begin_type, "ticks"), empty),
                strict=True,
            )
        )
        end_ticks = columns.get((end_type, "ticks"), array("q", bytes(8 * len(end_ids))))
        for span_id, ticks in zip(end_ids, end_ticks, strict=True):
            began = begin_ticks.get(span_id)
            if began is None:
                raise FormatError(
                    f"{end_type}.span_id {span_id} has no {begin_type} in the block (the begins "
                    "of spans open at the block's start are replayed in it)"
                )
            if ticks < began:
                raise FormatError(
                    f"{end_type}.ticks {ticks} of span {span_id} is before its begin ({began})"
                )


_ATTACHMENT_CHECKS = {
    "attachment_id": (valid_attachment_id, "is not a lowercase UUID"),
    "size": (lambda size: size >= 0, "is negative"),
    "sha256": (valid_sha256, "is not 64 lowercase hexadecimal digits"),
}
"""What the ``attachment`` event's fields must be, as ``POST /v1/attachments`` requires them of a
declaration: a forged event cannot put an id that is no UUID (a ``link`` such as
``/v1/attachments/../../v1/query``), a negative size or a digest that is not one in the table."""


def _check_attachments(columns: dict[str, array], lengths: array, text: memoryview) -> None:
    """The ``attachment`` rows' id, size and sha256 (rare events: each string is decoded)."""
    starts = None
    for name, values in columns.items():
        valid, problem = _ATTACHMENT_CHECKS[name]
        if name != "size":
            if starts is None:
                starts = array("q", [0])
                for length in lengths:
                    starts.append(starts[-1] + length)
            try:
                values = [
                    bytes(text[starts[ref] : starts[ref + 1]]).decode("utf-8") for ref in values
                ]
            except IndexError:
                raise FormatError(f"attachment.{name} refers outside the string table") from None
        for row, value in enumerate(values):
            if not valid(value):
                raise FormatError(f"attachment.{name} {str(value)[:80]!r} (row {row}) {problem}")


def _check_span_field(name: str, values: array, what: str) -> None:
    limit = SPAN_FIELD_LIMITS.get(name)
    if limit is not None and max(values) > limit:
        raise FormatError(f"{what} holds {max(values)}, above the maximum {limit}")
    if name == "span_id" and len(set(values)) != len(values):
        # One row per span: a repeated id would pair every begin with every end.
        raise FormatError(f"{what} repeats an id: each span appears once per block")


def _check_counts(rows: dict[str, int], object_count: int) -> None:
    """``object_count`` bounds the rows of every type but span begins (replayed ones are not
    counted) and ends (the SDK closes spans whose end was lost with their parent); those are
    bounded by their unique ids instead, so pairing them makes at most one row per end."""
    counted = sum(count for name, count in rows.items() if name not in _SPAN_NAMES)
    if counted > object_count:
        raise FormatError(f"object_count {object_count} is below the {counted} events it holds")


def check_block(
    data: bytes, layout: Layout, budget: Budget = DEFAULT_BUDGET, *, complete: bool = True
) -> tuple[BlockHeader, bytes, BlockSummary]:
    """The header, the decompressed payload and its summary, once everything is checked
    (``complete``: see ``check_payload``)."""
    header = parse_header(data)
    payload = decompress(data, header, budget)
    summary = check_payload(payload, layout, header.object_count, budget, complete=complete)
    return header, payload, summary
