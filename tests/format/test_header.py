"""``parse_header`` on its own: each refusal's exact message, and the boundaries of each check
(issue 16: mutation testing found these unasserted)."""

from __future__ import annotations

import struct
import uuid

import pytest

from blocklake.format.header import (
    HEADER_SIZE,
    MAX_SEQUENCE,
    BlockHeader,
    FormatError,
    parse_header,
)

# header offsets (transit-v1.md)
VERSION, HEADER_SIZE_AT, COMPRESSION, FLAGS, RESERVED, SEQUENCE = 4, 6, 8, 9, 10, 48
BEGIN, END, PAYLOAD_SIZE, RESERVED_END = 56, 64, 72, 84


def header(payload: bytes = b"", **fields) -> bytes:
    values = {
        "stream_id": uuid.UUID(int=7),
        "block_id": uuid.UUID(int=8),
        "sequence": 3,
        "begin_ticks": 1,
        "end_ticks": 6,
        "object_count": 2,
        "payload_size": len(payload),
        "uncompressed_size": 40,
        "payload_crc32": 99,
        "compression": 0,
    }
    values.update(fields)
    return BlockHeader(**values).pack() + payload


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def refused(data: bytes) -> str:
    with pytest.raises(FormatError) as caught:
        parse_header(data)
    return str(caught.value)


def test_a_valid_header_is_read_field_by_field() -> None:
    parsed = parse_header(header(b"12345678", compression=1))
    assert parsed == BlockHeader(
        stream_id=uuid.UUID(int=7),
        block_id=uuid.UUID(int=8),
        sequence=3,
        begin_ticks=1,
        end_ticks=6,
        object_count=2,
        payload_size=8,
        uncompressed_size=40,
        payload_crc32=99,
        compression=1,
        header_size=HEADER_SIZE,
    )


def test_a_header_alone_with_an_empty_payload_is_valid() -> None:
    assert len(header()) == HEADER_SIZE
    assert parse_header(header()).payload_size == 0


def test_a_longer_header_is_skipped_and_its_size_kept() -> None:
    # a later version may append fields: header_size says where the payload starts
    data = patched(header(), HEADER_SIZE_AT, "<H", HEADER_SIZE + 8) + b"\0" * 8 + b"abcd"
    data = patched(data, PAYLOAD_SIZE, "<I", 4)
    parsed = parse_header(data)
    assert (parsed.header_size, parsed.payload_size) == (HEADER_SIZE + 8, 4)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"BLK", "block is 3 bytes, shorter than the 88-byte header"),
        (b"", "block is 0 bytes, shorter than the 88-byte header"),
        # 8 bytes hold the magic, version and header_size: those are checked first
        (header()[:8], "block is 8 bytes, shorter than its 88-byte header"),
        (header()[:87], "block is 87 bytes, shorter than its 88-byte header"),
        (b"XLKL" + header()[4:], "bad magic b'XLKL': expected b'BLKL'"),
        (patched(header(), VERSION, "<H", 2), "unsupported format version 2: expected 1"),
        (
            patched(header(), VERSION, "<H", 0x8001),
            "unsupported format version 32769: expected 1",
        ),
        (
            patched(header(), HEADER_SIZE_AT, "<H", 40),
            "header_size 40 is below the v1 minimum of 88",
        ),
        (
            patched(header(), HEADER_SIZE_AT, "<H", 65535),
            "block is 88 bytes, shorter than its 65535-byte header",
        ),
        (
            patched(header(), COMPRESSION, "B", 2),
            "unknown compression 2: expected 0 (none) or 1 (lz4)",
        ),
        (patched(header(), FLAGS, "B", 1), "header field flags is 1: expected 0"),
        (patched(header(), RESERVED, "<H", 7), "header field reserved is 7: expected 0"),
        (patched(header(), RESERVED_END, "<I", 5), "header field reserved_end is 5: expected 0"),
        (
            patched(header(), SEQUENCE, "<Q", MAX_SEQUENCE + 1),
            f"sequence {MAX_SEQUENCE + 1} is above the maximum {MAX_SEQUENCE}",
        ),
        (
            header(b"abc", payload_size=4),
            "block truncated: header says 4 payload bytes, body has 3",
        ),
        (
            header(b"abcd", payload_size=3),
            "block has trailing bytes: header says 3 payload bytes, body has 4",
        ),
        (header(begin_ticks=7, end_ticks=6), "begin_ticks 7 is after end_ticks 6"),
    ],
)
def test_each_refusal_says_what_is_wrong(data: bytes, message: str) -> None:
    assert refused(data) == message


def test_the_boundaries_are_accepted() -> None:
    assert parse_header(patched(header(), SEQUENCE, "<Q", MAX_SEQUENCE)).sequence == MAX_SEQUENCE
    parsed = parse_header(header(b"x", begin_ticks=5, end_ticks=5))
    assert (parsed.begin_ticks, parsed.end_ticks, parsed.payload_size) == (5, 5, 1)
