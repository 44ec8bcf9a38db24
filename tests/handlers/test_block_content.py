"""Issue 10, items 4-6: what a block holds is refused at ingest (400 naming the field) when
readers could not agree on it: repeated map keys, unmatched span ends, nonzero reserved bytes."""

from __future__ import annotations

import struct
import uuid
import zlib

import lz4.block
import pytest

from blocklake.etl.convert import BlockConverter
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types
from tests.handlers.test_ingest_refusals import Ingest, refused
from tests.helpers import lake_for, stored_rows


class Pairs(list):
    """A property map that repeats keys, as a forger may write one."""

    def items(self):
        return self


@pytest.fixture
def ingest(settings, context) -> Ingest:
    return Ingest(settings, context)


def log_block(stream: str, properties: list, *, compress: bool = True) -> bytes:
    strings = StringTable()
    n = len(properties)
    ticks = list(range(10, 10 + n))
    columns = [ticks, [4] * n, ["t"] * n, ["m"] * n, properties]
    section = encode_section(event_types(1)["log_entry"], columns, strings)
    return encode_block(
        stream_id=uuid.UUID(stream),
        sequence=0,
        begin_ticks=ticks[0],
        end_ticks=ticks[-1],
        object_count=n,
        sections=[section],
        strings=strings,
        compress=compress,
    )


def with_crc(block: bytearray) -> bytes:
    struct.pack_into("<I", block, 80, zlib.crc32(block[88:]))
    return bytes(block)


def test_a_repeated_property_key_is_refused(ingest: Ingest) -> None:
    stream = ingest.stream(start_ticks=0)
    block = log_block(stream, [{"a": "1"}, Pairs([("a", "1"), ("a", "2")])])
    refused(ingest, "/v1/blocks", block, 400, "log_entry.properties", "row 1", "repeats a key")


def test_a_key_repeated_through_a_repeated_string_is_refused(ingest: Ingest) -> None:
    stream = ingest.stream(start_ticks=0)
    block = bytearray(log_block(stream, [{"a": "1", "b": "2"}], compress=False))
    # strings: t, m, a, 1, b, 2; make "b" read "a": two refs, one text
    table = block.index(b"tma1b2")
    block[table + 4] = ord("a")
    refused(ingest, "/v1/blocks", with_crc(block), 400, "log_entry.properties", "repeats")


def test_distinct_keys_across_rows_are_accepted(ingest: Ingest) -> None:
    stream = ingest.stream(start_ticks=0)
    block = log_block(stream, [{"a": "1", "b": "2"}, {"a": "2"}, {}, None])
    assert ingest.call("/v1/blocks", block)[0] == 201


def span_block(stream: str, begins: list[tuple[int, int]], ends: list[tuple[int, int]]) -> bytes:
    """Thread span begins and ends, as (ticks, span id)."""
    types = event_types(1)
    strings = StringTable()
    k = len(begins)
    sections = []
    if begins:
        columns = [[b[0] for b in begins], [b[1] for b in begins], [0] * k, [0] * k]
        columns += [["s"] * k, ["t"] * k, ["f"] * k, [1] * k]
        sections.append(encode_section(types["thread_span_begin"], columns, strings))
    if ends:
        columns = [[e[0] for e in ends], [e[1] for e in ends]]
        sections.append(encode_section(types["thread_span_end"], columns, strings))
    ticks = [t for t, _ in begins + ends]
    return encode_block(
        stream_id=uuid.UUID(stream),
        sequence=0,
        begin_ticks=min(ticks),
        end_ticks=max(ticks),
        object_count=0,
        sections=sections,
        strings=strings,
    )


@pytest.mark.parametrize(
    "begins,ends,words",
    [
        ([], [(20, 1)], ["thread_span_end.span_id 1", "no thread_span_begin"]),
        ([(10, 2)], [(20, 1)], ["thread_span_end.span_id 1", "no thread_span_begin"]),
        ([(30, 1)], [(20, 1)], ["thread_span_end.ticks 20", "before its begin"]),
    ],
    ids=["end alone", "end of another span", "end before begin"],
)
def test_unmatched_span_ends_are_refused(ingest: Ingest, begins, ends, words) -> None:
    stream = ingest.stream("thread_span_begin", "thread_span_end", start_ticks=0)
    refused(ingest, "/v1/blocks", span_block(stream, begins, ends), 400, *words)


def test_open_spans_and_zero_length_spans_are_accepted(ingest: Ingest) -> None:
    stream = ingest.stream("thread_span_begin", "thread_span_end", start_ticks=0)
    block = span_block(stream, [(10, 1), (12, 2), (11, 3)], [(12, 2), (14, 3)])
    assert ingest.call("/v1/blocks", block)[0] == 201
    converter = BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs))
    (key,) = ingest.blobs.list("raw/")
    converter.convert_key(key)
    # The rows the table holds (the views hide a row with no end): one row per span whose end
    # is in the block, none for span 1, still open at the block's end.
    stored = stored_rows(ingest.blobs, "thread_spans").select(["span_id", "duration_ns"])
    assert stored.to_pylist() == [
        {"span_id": 2, "duration_ns": 0},
        {"span_id": 3, "duration_ns": 3},
    ]


def _table_end(block: bytes) -> int:
    """Offset in the block of the payload's section_count (after the padded string table)."""
    (count,) = struct.unpack_from("<I", block, 88)
    (text,) = struct.unpack_from("<i", block, 88 + 4 + 4 * count)
    size = 4 + 4 * (count + 1) + text
    return 88 + size + (-size % 8)


@pytest.mark.parametrize("change", [-8, 8, "zero"])
def test_uncompressed_size_is_the_payload_size_without_compression(ingest, change) -> None:
    stream = ingest.stream(start_ticks=0)
    block = bytearray(log_block(stream, [{"a": "1"}], compress=False))
    size = len(block) - 88
    assert struct.unpack_from("<I", block, 76) == (size,)
    struct.pack_into("<I", block, 76, 0 if change == "zero" else size + change)
    refused(ingest, "/v1/blocks", bytes(block), 400, "uncompressed_size")


@pytest.mark.parametrize(
    "where,fmt,words",
    [
        (4, "<I", ["payload field reserved"]),  # after section_count
        (10, "<H", ["section of type 1", "reserved"]),
        (8 + 8 + 8 + 1, "B", ["padding after log_entry.level"]),  # after the 1-byte level
    ],
    ids=["payload reserved", "section reserved", "pad8"],
)
@pytest.mark.parametrize("compress", [False, True])
def test_reserved_and_padding_bytes_must_be_zero(ingest, where, fmt, words, compress) -> None:
    stream = ingest.stream(start_ticks=0)
    plain = bytearray(log_block(stream, [{"a": "1"}], compress=False))
    struct.pack_into(fmt, plain, _table_end(plain) + where, 1)
    if compress:
        body = lz4.block.compress(bytes(plain[88:]), store_size=False)
        plain[8] = 1
        struct.pack_into("<II", plain, 72, len(body), len(plain) - 88)
        plain[88:] = body
    refused(ingest, "/v1/blocks", with_crc(plain), 400, *words)
