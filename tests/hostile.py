"""Hostile blocks from issue 10, each a few kilobytes that once cost gigabytes to convert.

Shared by the decoder, ingest, ETL and memory tests, and by the fuzz corpus.
"""

from __future__ import annotations

import random
import string
import struct
import uuid
import zlib

import lz4.block

from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import HEADER_SIZE
from blocklake.format.schema import event_types

KNOWN = event_types(1)
MIB = 1024 * 1024
SPAN_NAMES = ("thread_span_begin", "thread_span_end")


def incompressible(size: int) -> str:
    """Text lz4 cannot shrink much, so a block holding it passes the ratio check."""
    return "".join(random.Random(size).choices(string.ascii_letters, k=size))


def block(stream_id: str, sections: list[bytes], strings: StringTable, count: int) -> bytes:
    """A block of ``sections`` with ``count`` objects, ticks 2,000 onwards."""
    return encode_block(
        stream_id=uuid.UUID(stream_id),
        sequence=0,
        begin_ticks=2_000,
        end_ticks=2_000 + count,
        object_count=count,
        sections=sections,
        strings=strings,
    )


def _span_sections(
    strings: StringTable, ids: list[int], end_ids: list[int], name: str = "work"
) -> list[bytes]:
    begin, end = (KNOWN[n] for n in SPAN_NAMES)
    n, m = len(ids), len(end_ids)
    ticks = list(range(2_000, 2_000 + n))
    return [
        encode_section(
            begin,
            [ticks, ids, [0] * n, [0] * n, [name] * n, [name] * n, [name] * n, [1] * n],
            strings,
        ),
        encode_section(end, [[2_000 + n + i for i in range(m)], end_ids], strings),
    ]


def span_bomb(stream_id: str, count: int = 4_000) -> bytes:
    """``count`` begins and ``count`` ends sharing one span id: ``count**2`` rows if paired
    naively (16 million for 4,000, 2.3 GB), in about a kilobyte."""
    strings = StringTable()
    return block(stream_id, _span_sections(strings, [7] * count, [7] * count), strings, count)


def long_string_spans(stream_id: str, spans: int = 200, name: str = "x" * MIB) -> bytes:
    """``spans`` spans named by one long string: a join that expands the strings holds
    ``spans`` copies of it per string column."""
    strings = StringTable()
    ids = list(range(1, spans + 1))
    sections = _span_sections(strings, ids, ids, name=name)
    return block(stream_id, sections, strings, 2 * spans)


def map_bomb(stream_id: str, entries: int = 1_000, value: str = "v" * MIB) -> bytes:
    """One log whose property map has ``entries`` keys all pointing at one long value: about a
    gigabyte once the map is made of strings."""
    strings = StringTable()
    section = encode_section(
        KNOWN["log_entry"],
        [[2_000], [4], ["t"], ["m"], [{f"k{i}": value for i in range(entries)}]],
        strings,
    )
    return block(stream_id, [section], strings, 1)


def _one_log_payload() -> bytes:
    strings = StringTable()
    section = encode_section(KNOWN["log_entry"], [[2_000], [4], ["t"], ["m"], [None]], strings)
    return strings.encode() + struct.pack("<II", 1, 0) + section


def with_header(
    stream_id: str, body: bytes, uncompressed_size: int, *, block_id: uuid.UUID | None = None
) -> bytes:
    """A header with the right CRC around an lz4 ``body`` announcing ``uncompressed_size``."""
    header = bytearray(block(stream_id, [], StringTable(), 0)[:HEADER_SIZE])
    struct.pack_into("<16s", header, 32, (block_id or uuid.uuid4()).bytes)
    struct.pack_into("<I", header, 12, 1)  # object_count
    struct.pack_into("<qqIII", header, 56, 2_000, 2_000, len(body), uncompressed_size, 0)
    struct.pack_into("<I", header, 80, zlib.crc32(body))
    return bytes(header) + body


def trailing_zeros(stream_id: str, zeros: int) -> bytes:
    """One log row followed by ``zeros`` zero bytes: the decoder once stopped after the row."""
    payload = _one_log_payload() + bytes(zeros)
    return with_header(stream_id, lz4.block.compress(payload, store_size=False), len(payload))


def zeros_announced(stream_id: str, announced: int = 1024 * MIB) -> bytes:
    """A small lz4 body whose header announces ``announced`` decompressed bytes (1 GiB): what a
    4 MB block of one log row and zeros decompresses to, without building it here."""
    body = lz4.block.compress(_one_log_payload() + bytes(MIB), store_size=False)
    return with_header(stream_id, body, announced)


def corrupt_crc(block: bytes) -> bytes:
    out = bytearray(block)
    struct.pack_into("<I", out, 80, zlib.crc32(out[HEADER_SIZE:]) ^ 1)
    return bytes(out)


def zero_uncompressed_size(block: bytes) -> bytes:
    out = bytearray(block)
    struct.pack_into("<I", out, 76, 0)
    return bytes(out)


AMPLIFIERS = {
    "span bomb": span_bomb,
    "long string spans": long_string_spans,
    "map bomb": map_bomb,
    "long incompressible string spans": lambda stream_id: long_string_spans(
        stream_id, name=incompressible(MIB)
    ),
    "incompressible map bomb": lambda stream_id: map_bomb(stream_id, value=incompressible(MIB)),
    "trailing zeros": lambda stream_id: trailing_zeros(stream_id, 512 * 1024),
    "1 GiB announced": zeros_announced,
}
"""Each hostile block of issue 10's item 3, by name: (stream_id) -> block bytes. Every one is
for a stream whose layout holds the built-in log and thread span types."""
LAYOUT_NAMES = ("log_entry", *SPAN_NAMES)
