"""Every malformed block raises FormatError: never a crash, a hang, another exception, or an
invalid Arrow array handed to the caller."""

from __future__ import annotations

import struct
import uuid
import zlib

import lz4.block
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocklake.format.arrow import decode_block
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import HEADER_SIZE, BlockHeader, FormatError
from blocklake.format.schema import event_types

KNOWN = event_types(1)
LOG, MEASURE = KNOWN["log_entry"], KNOWN["measure"]
LAYOUT = {t.id: t for t in KNOWN.values()}

# header offsets (transit-v1.md)
VERSION, HEADER_SIZE_AT, COMPRESSION, BEGIN, END = 4, 6, 8, 56, 64
PAYLOAD_SIZE, UNCOMPRESSED_SIZE, CRC = 72, 76, 80


def valid_sections(strings: StringTable) -> list[bytes]:
    return [
        encode_section(
            LOG,
            [
                [1, 2, 3],
                [4, 3, 2],
                ["a", "b", "a"],
                ["x", "y", "é"],
                [{"k": "v"}, None, {"a": "b"}],
            ],
            strings,
        ),
        encode_section(MEASURE, [[4, 5], ["cpu", "mem"], ["%", "B"], [1.0, 2.0]], strings),
        # the largest span id: below 2**63, as the lake's column is signed
        encode_section(KNOWN["thread_span_end"], [[6], [2**63 - 1]], strings),
    ]


def valid_payload() -> bytes:
    strings = StringTable()
    sections = valid_sections(strings)
    return strings.encode() + struct.pack("<II", len(sections), 0) + b"".join(sections)


def wrap(payload: bytes, *, compress: bool = True, uncompressed_size: int | None = None) -> bytes:
    """A block with a correct header (sizes, CRC) around ``payload`` (the decompressed bytes)."""
    body = lz4.block.compress(payload, store_size=False) if compress else payload
    header = BlockHeader(
        stream_id=uuid.UUID(int=7),
        block_id=uuid.UUID(int=8),
        sequence=0,
        begin_ticks=1,
        end_ticks=6,
        object_count=6,
        payload_size=len(body),
        uncompressed_size=len(payload) if uncompressed_size is None else uncompressed_size,
        payload_crc32=zlib.crc32(body),
        compression=1 if compress else 0,
    )
    return header.pack() + body


def valid_block(compress: bool = True) -> bytes:
    strings = StringTable()
    return encode_block(
        stream_id=uuid.UUID(int=7),
        block_id=uuid.UUID(int=8),
        sequence=0,
        begin_ticks=1,
        end_ticks=6,
        object_count=6,
        sections=valid_sections(strings),
        strings=strings,
        compress=compress,
    )


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def strings_of(*values: str) -> bytes:
    """A string table, padded."""
    encoded = [v.encode() for v in values]
    offsets = [0]
    for item in encoded:
        offsets.append(offsets[-1] + len(item))
    head = struct.pack(f"<I{len(offsets)}i", len(values), *offsets) + b"".join(encoded)
    return head + b"\0" * (-len(head) % 8)


def pad(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 8)


def section(type_id: int, rows: int, *columns: bytes) -> bytes:
    return struct.pack("<HHI", type_id, 0, rows) + b"".join(pad(c) for c in columns)


def measure_section(rows: int, name_ref: int = 0, unit_ref: int = 0) -> bytes:
    return section(
        MEASURE.id,
        rows,
        struct.pack(f"<{rows}q", *range(rows)),
        struct.pack(f"<{rows}I", *[name_ref] * rows),
        struct.pack(f"<{rows}I", *[unit_ref] * rows),
        struct.pack(f"<{rows}d", *[1.0] * rows),
    )


def log_section(offsets: list[int], key_refs: list[int], value_refs: list[int]) -> bytes:
    rows = len(offsets) - 1
    return section(
        LOG.id,
        rows,
        struct.pack(f"<{rows}q", *range(rows)),
        bytes(rows),
        struct.pack(f"<{rows}I", *[0] * rows),
        struct.pack(f"<{rows}I", *[0] * rows),
    ) + b"".join(
        pad(struct.pack(f"<{len(v)}{code}", *v))
        for code, v in (("i", offsets), ("I", key_refs), ("I", value_refs))
    )


def payload(*sections: bytes, strings: bytes | None = None, count: int | None = None) -> bytes:
    table = strings_of("a", "b") if strings is None else strings
    return (
        table
        + struct.pack("<II", len(sections) if count is None else count, 0)
        + b"".join(sections)
    )


def assert_rejected(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_block(data, LAYOUT)


def test_the_fixtures_are_valid() -> None:
    for data in (valid_block(True), valid_block(False), wrap(valid_payload())):
        decoded = decode_block(data, LAYOUT)
        assert decoded.sections["log_entry"].num_rows == 3
    for body in (
        payload(measure_section(2)),
        payload(log_section([0, 1, 2], [0, 1], [1, 0])),
    ):
        for compress in (True, False):
            assert decode_block(wrap(body, compress=compress), LAYOUT).sections


def header_cases(compress: bool) -> dict[str, bytes]:
    """Broken headers and envelopes around a valid block, lz4-compressed or not."""
    block = valid_block(compress)
    return {
        "empty": b"",
        "three bytes": b"BLK",
        "wrong magic": b"XLKL" + block[4:],
        "lower-case magic": b"blkl" + block[4:],
        "wrong version 0": patched(block, VERSION, "<H", 0),
        "wrong version 2": patched(block, VERSION, "<H", 2),
        "header_size below 88": patched(block, HEADER_SIZE_AT, "<H", 40),
        "header_size past the end": patched(block, HEADER_SIZE_AT, "<H", 65535),
        "header only, cut": block[: HEADER_SIZE - 1],
        "truncated body": block[:-1],
        "truncated to the header": block[:HEADER_SIZE],
        "trailing bytes": block + b"\0",
        "payload_size too big": patched(block, PAYLOAD_SIZE, "<I", 2**32 - 1),
        "unknown compression": patched(block, COMPRESSION, "B", 2),
        "begin after end": patched(block, BEGIN, "<q", 7),
        "bad crc": patched(block, CRC, "<I", zlib.crc32(block[HEADER_SIZE:]) ^ 1),
        "payload byte flipped": block[:-1] + bytes([block[-1] ^ 0x40]),
    }


HEADER_CASES = {
    f"{name}, {kind}": data
    for kind, compress in (("lz4", True), ("none", False))
    for name, data in header_cases(compress).items()
}


@pytest.mark.parametrize("data", list(HEADER_CASES.values()), ids=list(HEADER_CASES))
def test_malformed_header_or_envelope(data: bytes) -> None:
    assert_rejected(data)


def _flip_last(block: bytes) -> bytes:
    return block[:-1] + bytes([block[-1] ^ 0x40])


@pytest.mark.parametrize("compress", [True, False], ids=["lz4", "none"])
@pytest.mark.parametrize("corrupt", ["crc", "payload"])
def test_a_corrupt_block_is_refused_for_its_crc_compressed_or_not(compress, corrupt) -> None:
    # Uncompressed blocks are valid transit v1: their CRC is checked as well. The last byte is
    # the largest span id's: flipped, the payload still parses, so only the CRC can notice.
    block = valid_block(compress)
    if corrupt == "crc":
        block = patched(block, CRC, "<I", zlib.crc32(block[HEADER_SIZE:]) ^ 1)
    else:
        block = _flip_last(block)
    with pytest.raises(FormatError, match="payload_crc32 does not match"):
        decode_block(block, LAYOUT)


LZ4_CASES = {
    "lz4 garbage": (bytes(range(256)) * 3, 1000),
    "lz4 empty": (b"", 10),
    "lz4 literal run past its input": (b"\xf0\xff\xff\xff", 100),
}


@pytest.mark.parametrize("body,size", list(LZ4_CASES.values()), ids=list(LZ4_CASES))
def test_lz4_garbage(body: bytes, size: int) -> None:
    header = BlockHeader(
        stream_id=uuid.UUID(int=7),
        block_id=uuid.UUID(int=8),
        sequence=0,
        begin_ticks=0,
        end_ticks=0,
        object_count=0,
        payload_size=len(body),
        uncompressed_size=size,
        payload_crc32=zlib.crc32(body),
    )
    assert_rejected(header.pack() + body)


@pytest.mark.parametrize(
    "uncompressed_size", [0, 1, 2**31 - 1, 2**31, 2**32 - 1], ids=lambda n: f"size={n}"
)
def test_uncompressed_size_that_lies(uncompressed_size: int) -> None:
    # the CRC covers the payload only: the header's size field can be anything
    real = len(valid_payload())
    assert uncompressed_size != real
    assert_rejected(wrap(valid_payload(), uncompressed_size=uncompressed_size))


PAYLOAD_CASES = {
    "empty payload": b"",
    "string table cut": strings_of("a", "b")[:6],
    "string count past the end": struct.pack("<I", 2**32 - 1) + bytes(12),
    "string table negative size": struct.pack("<I3i", 2, 0, 1, -4) + bytes(4),
    "string offsets decrease": struct.pack("<I3i", 2, 0, 3, 1) + b"abc" + bytes(5),
    "string offsets start negative": struct.pack("<I3i", 2, -1, 1, 2) + b"ab" + bytes(2),
    "string bytes not utf-8": struct.pack("<I2i", 1, 0, 2) + b"\xff\xfe" + bytes(2),
    "no section count": strings_of("a"),
    "section count overruns": payload(measure_section(1), count=2),
    "section count huge": payload(count=2**32 - 1),
    "section header cut": payload(measure_section(1)[:6], count=1),
    "section rows overrun": payload(measure_section(3)[:-24]),
    "section rows huge": payload(section(MEASURE.id, 2**32 - 1)),
    "string ref out of range": payload(measure_section(2, name_ref=2)),
    "string ref max u32": payload(measure_section(1, unit_ref=2**32 - 1)),
    "string ref with empty table": payload(measure_section(1), strings=strings_of()),
    "unknown type id": payload(section(999, 0)),
    "type id 0": payload(section(0, 0)),
    "duplicate section": payload(measure_section(1), measure_section(1)),
    "map count negative": payload(log_section([0, -1], [], [])),
    "map offsets start above 0": payload(log_section([1, 1], [0], [0])),
    "map offset past the entries": payload(log_section([0, 5, 2], [0, 1], [1, 0])),
    "map offsets decrease": payload(log_section([0, 2, 1], [0], [0])),
    "map offset negative inside": payload(log_section([0, -3, 1], [0], [0])),
    "map count past the end": payload(log_section([0, 1000], [0], [0])),
    "map key ref out of range": payload(log_section([0, 1], [2], [0])),
    "map value ref out of range": payload(log_section([0, 1], [0], [2**31])),
}


@pytest.mark.parametrize("compress", [True, False], ids=["lz4", "none"])
@pytest.mark.parametrize("body", list(PAYLOAD_CASES.values()), ids=list(PAYLOAD_CASES))
def test_malformed_payload(body: bytes, compress: bool) -> None:
    assert_rejected(wrap(body, compress=compress))


def check_decodes_or_rejects(data: bytes) -> None:
    """Success must hand back valid Arrow data; failure must be a FormatError."""
    try:
        decoded = decode_block(data, LAYOUT)
    except FormatError:
        return
    for name, table in decoded.sections.items():
        try:
            table.validate(full=True)
        except pa.ArrowInvalid as error:  # pragma: no cover - a decoder bug
            raise AssertionError(f"decoder returned an invalid {name} table: {error}") from error
        table.to_pylist()


MUTATION = st.tuples(
    st.sampled_from(["xor", "set", "truncate", "insert", "delete"]),
    st.integers(0, 10**6),
    st.integers(1, 255),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, byte in mutations:
        if not out:
            break
        where %= len(out)
        if kind == "xor":
            out[where] ^= byte
        elif kind == "set":
            out[where] = byte if byte % 2 else 0
        elif kind == "truncate":
            del out[where:]
        elif kind == "insert":
            out.insert(where, byte)
        else:
            del out[where]
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
    compress=st.booleans(),
)
def test_corrupted_payload_decodes_or_raises_format_error(mutations, compress) -> None:
    """Random damage inside the payload, with the header and CRC made to match it, so the
    decoder walks the damaged bytes."""
    check_decodes_or_rejects(wrap(mutate(valid_payload(), mutations), compress=compress))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3), compress=st.booleans())
def test_corrupted_block_decodes_or_raises_format_error(mutations, compress) -> None:
    """Random damage anywhere in the block (header included), CRC recomputed over the body."""
    data = bytearray(mutate(valid_block(compress), mutations))
    if len(data) >= HEADER_SIZE:
        struct.pack_into("<I", data, CRC, zlib.crc32(data[HEADER_SIZE:]))
    check_decodes_or_rejects(bytes(data))


@settings(max_examples=150, deadline=None)
@given(header=st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE), compress=st.booleans())
def test_random_header_decodes_or_raises_format_error(header: bytes, compress: bool) -> None:
    body = valid_block(compress)[HEADER_SIZE:]
    check_decodes_or_rejects(b"BLKL" + header[4:] + body)
    check_decodes_or_rejects(b"BLKL\x01\x00\x58\x00" + header[8:] + body)
