"""Coverage-guided fuzzing (atheris, libFuzzer) of the block decoder and of ingest-then-convert.

    python -m tests.fuzz.fuzz_blocks decoder|ingest [libFuzzer flags] [corpus dirs]

The first corpus directory receives the new inputs the fuzzer finds; ``tests/fuzz/corpus`` is
the committed seed corpus. Before each run the harness sets the header's ``payload_size`` and
``payload_crc32`` to match the body (and, for ``ingest``, the registered stream's id), so
mutations reach the payload instead of stopping at the CRC. What must hold:

- decoder: ``decode_block`` returns valid Arrow tables or raises ``FormatError``;
- ingest: an upload is answered (stored, or refused with a 4xx ``ClientError``), and a block
  ingest stored converts.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import tempfile
import uuid
import zlib

import atheris

with atheris.instrument_imports(include=["blocklake"]):
    from blocklake.errors import ClientError
    from blocklake.etl.convert import BlockConverter
    from blocklake.format.arrow import decode_block
    from blocklake.format.header import HEADER_SIZE, FormatError
    from blocklake.format.schema import event_types, layout_to_json
    from blocklake.ingest.service import IngestService
    from blocklake.stores.blobs import LocalBlobStore
    from blocklake.stores.metadata import SqlMetadataStore
    from blocklake.stores.sql import SqliteExecutor
    from tests.helpers import lake_for

LAYOUT = {t.id: t for t in event_types(1).values()}
STREAM_ID = uuid.UUID(int=0x5EED)


def fixed(data: bytes, stream_id: uuid.UUID | None = None) -> bytes:
    """``data`` with the header's payload size and CRC made to match; with ``stream_id``, also
    that stream's id and a block id of its own (a digest of the input), so that a mutated
    block is a new upload rather than a conflicting one."""
    if len(data) < HEADER_SIZE:
        return data
    out = bytearray(data)
    if stream_id is not None:
        out[16:32] = stream_id.bytes
        out[32:48] = hashlib.md5(data).digest()
    struct.pack_into("<I", out, 72, len(out) - HEADER_SIZE)
    struct.pack_into("<I", out, 80, zlib.crc32(out[HEADER_SIZE:]))
    return bytes(out)


def fuzz_decoder(data: bytes) -> None:
    try:
        decoded = decode_block(fixed(data), LAYOUT)
    except FormatError:
        return
    for table in decoded.sections.values():
        table.validate(full=True)


class IngestThenConvert:
    """One lake for the whole run: a process and a stream of every built-in type."""

    def __init__(self) -> None:
        root = tempfile.mkdtemp(prefix="blocklake-fuzz-")
        self.blobs = LocalBlobStore(root)
        self.metadata = SqlMetadataStore(SqliteExecutor(":memory:"))
        self.metadata.migrate()
        self.ingest = IngestService(self.blobs, self.metadata, 4 * 1024 * 1024)
        self.converter = BlockConverter(self.blobs, self.metadata, lake_for(self.blobs))
        self.accepted = 0
        process_id = str(uuid.UUID(int=1))
        self.ingest.register_process(
            "fuzz",
            {
                "process_id": process_id,
                "exe": "fuzz",
                "username": "fuzz",
                "computer": "fuzz",
                "start_time_ns": 1_794_000_000_000_000_000,
                "start_ticks": 0,
                "tick_frequency": 1_000_000_000,
            },
        )
        self.ingest.register_stream(
            "fuzz",
            {
                "stream_id": str(STREAM_ID),
                "process_id": process_id,
                "tags": ["fuzz"],
                "layout": layout_to_json(list(LAYOUT.values())),
            },
        )

    def __call__(self, data: bytes) -> None:
        try:
            stored = self.ingest.store_block("fuzz", fixed(data, STREAM_ID))
        except ClientError as error:
            assert 400 <= error.status < 500, error.message
            return
        if not stored.duplicate:
            self.converter.convert_key(stored.object_key)  # what ingest accepts converts
            self.accepted += 1
            if self.accepted & (self.accepted - 1) == 0:  # libFuzzer ends the process abruptly
                print(f"accepted and converted: {self.accepted}", file=sys.stderr, flush=True)


def main() -> None:
    target = sys.argv.pop(1)
    fuzz = fuzz_decoder if target == "decoder" else IngestThenConvert()
    atheris.Setup(sys.argv, fuzz)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
