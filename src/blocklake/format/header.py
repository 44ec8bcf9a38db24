"""The fixed block header: what ingestion reads to validate and route a block, uncompressed."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

MAGIC = b"BLKL"
CONTENT_TYPE = "application/vnd.blocklake.block"
"""HTTP content type of an uploaded block."""
FORMAT_VERSION = 1
COMPRESSION_NONE = 0
COMPRESSION_LZ4 = 1
_LAYOUT = struct.Struct("<4sHHBBHI16s16sQqqIIII")
HEADER_SIZE = _LAYOUT.size
MAX_SEQUENCE = 2**63 - 1
"""``sequence`` is a u64 on the wire, but stores keep signed 64-bit integers."""


class FormatError(ValueError):
    """Bytes that are not a valid block; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    stream_id: uuid.UUID
    block_id: uuid.UUID
    sequence: int
    begin_ticks: int
    end_ticks: int
    object_count: int
    payload_size: int
    uncompressed_size: int
    payload_crc32: int
    compression: int = COMPRESSION_LZ4
    header_size: int = HEADER_SIZE

    def pack(self) -> bytes:
        return _LAYOUT.pack(
            MAGIC,
            FORMAT_VERSION,
            HEADER_SIZE,
            self.compression,
            0,
            0,
            self.object_count,
            self.stream_id.bytes,
            self.block_id.bytes,
            self.sequence,
            self.begin_ticks,
            self.end_ticks,
            self.payload_size,
            self.uncompressed_size,
            self.payload_crc32,
            0,
        )


def parse_header(data: bytes | memoryview) -> BlockHeader:
    """Reads and checks a block header; ``data`` is the whole block so its size is checked too."""
    if len(data) < 8:
        raise FormatError(f"block is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    if bytes(data[:4]) != MAGIC:
        raise FormatError(f"bad magic {bytes(data[:4])!r}: expected {MAGIC!r}")
    version, header_size = struct.unpack_from("<HH", data, 4)
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported format version {version}: expected {FORMAT_VERSION}")
    if header_size < HEADER_SIZE:
        raise FormatError(f"header_size {header_size} is below the v1 minimum of {HEADER_SIZE}")
    if len(data) < header_size:
        raise FormatError(f"block is {len(data)} bytes, shorter than its {header_size}-byte header")
    (_, _, _, compression, flags, reserved, count, stream, block, sequence, begin, end, size, raw,
     crc, reserved_end) = _LAYOUT.unpack_from(data)  # fmt: skip
    if compression not in (COMPRESSION_NONE, COMPRESSION_LZ4):
        raise FormatError(f"unknown compression {compression}: expected 0 (none) or 1 (lz4)")
    # Reserved fields must be zero, so that a later version can give them a meaning.
    for name, value in (("flags", flags), ("reserved", reserved), ("reserved_end", reserved_end)):
        if value:
            raise FormatError(f"header field {name} is {value}: expected 0")
    if sequence > MAX_SEQUENCE:
        raise FormatError(f"sequence {sequence} is above the maximum {MAX_SEQUENCE}")
    actual = len(data) - header_size
    if actual != size:
        state = "truncated" if actual < size else "has trailing bytes"
        raise FormatError(f"block {state}: header says {size} payload bytes, body has {actual}")
    if begin > end:
        raise FormatError(f"begin_ticks {begin} is after end_ticks {end}")
    return BlockHeader(
        stream_id=uuid.UUID(bytes=stream),
        block_id=uuid.UUID(bytes=block),
        sequence=sequence,
        begin_ticks=begin,
        end_ticks=end,
        object_count=count,
        payload_size=size,
        uncompressed_size=raw,
        payload_crc32=crc,
        compression=compression,
        header_size=header_size,
    )
