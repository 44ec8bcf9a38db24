"""Peak memory of converting one block, measured in a fresh process (issue 10, item 2).

``python -m tests.handlers.conversion_memory CASE...`` prints a JSON line per case: the block's
size, its decompressed payload and map text, and the growth of the process's resident set
(peak, from a reset of the kernel's high-water mark) while the ETL converts it. Cases: each
amplifier of ``tests.hostile`` (refused: conversion must give up before expanding anything)
and the largest blocks the budget accepts. One case per process gives the truest figure: an
allocator keeps what an earlier case freed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from blocklake.etl.convert import BlockConverter, ConversionFailed
from blocklake.format.check import check_block
from blocklake.format.encode import StringTable, encode_section
from blocklake.format.header import parse_header
from blocklake.ingest.service import IngestService
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.models import BlockInfo
from blocklake.stores.sql import SqliteExecutor
from tests import hostile
from tests.helpers import lake_for, process_document, stream_document

MIB = 1024 * 1024


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def widest_map(stream_id: str) -> bytes:
    """One log whose map expands to just under the budget: 15 keys on one 1 MiB value."""
    return hostile.map_bomb(stream_id, entries=15, value=hostile.incompressible(MIB))


def widest_messages(stream_id: str) -> bytes:
    """120 logs whose message is one 1 MiB string: 120 MiB of text."""
    strings = StringTable()
    rows, message = 120, hostile.incompressible(MIB)
    section = encode_section(
        hostile.KNOWN["log_entry"],
        [
            list(range(2_000, 2_000 + rows)),
            [4] * rows,
            ["t"] * rows,
            [message] * rows,
            [None] * rows,
        ],
        strings,
    )
    return hostile.block(stream_id, [section], strings, rows)


def widest_spans(stream_id: str) -> bytes:
    """40 spans whose name, target and file are one 1 MiB string: 120 MiB of text."""
    return hostile.long_string_spans(stream_id, spans=40, name=hostile.incompressible(MIB))


def largest_payload(stream_id: str) -> bytes:
    """200,000 logs with distinct messages: a 32 MiB payload in a block of a few MiB."""
    strings = StringTable()
    rows = 200_000
    messages = [
        f"request {i:09d} served in {i % 997} ms from cache shard {i % 61}" for i in range(rows)
    ]
    section = encode_section(
        hostile.KNOWN["log_entry"],
        [list(range(2_000, 2_000 + rows)), [4] * rows, ["web"] * rows, messages, [None] * rows],
        strings,
    )
    return hostile.block(stream_id, [section], strings, rows)


ACCEPTED = {
    "widest map": widest_map,
    "widest spans": widest_spans,
    "widest messages": widest_messages,
    "largest payload": largest_payload,
}
CASES = {**ACCEPTED, **hostile.AMPLIFIERS}


def measure(case: str) -> dict:
    with tempfile.TemporaryDirectory() as root:
        blobs = LocalBlobStore(root)
        metadata = SqlMetadataStore(SqliteExecutor(Path(root) / "metadata.db"))
        metadata.migrate()
        ingest = IngestService(blobs, metadata, 64 * MIB)
        process = process_document()
        ingest.register_process("t", process)
        stream = stream_document(process["process_id"], *hostile.LAYOUT_NAMES)
        ingest.register_stream("t", stream)
        data = CASES[case](stream["stream_id"])
        if case in ACCEPTED:
            key = ingest.store_block("t", data).object_key
        else:  # refused by ingest: stored as an older ingest would have, to try the ETL on it
            header = parse_header(data)
            begin = process["start_time_ns"]
            key = raw_key("t", begin, stream["stream_id"], str(header.block_id))
            blobs.put(key, data)
            metadata.insert_block(
                "t",
                BlockInfo(
                    str(header.block_id),
                    stream["stream_id"],
                    process["process_id"],
                    0,
                    2_000,
                    2_000,
                    begin,
                    begin,
                    1,
                    header.payload_size,
                    key,
                ),
            )
        converter = BlockConverter(blobs, metadata, lake_for(blobs))
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set
        before = _kib("VmRSS")
        started = time.perf_counter()
        try:
            rows = sum(converter.convert_recorded(key).rows.values())
            outcome = f"converted {rows} rows"
        except ConversionFailed as failed:
            outcome = f"refused: {failed.reason[:80]}"
        seconds = time.perf_counter() - started
        peak = _kib("VmHWM") - before
        summary = (
            check_block(data, metadata.get_stream("t", stream["stream_id"]).layout)[2]
            if (case in ACCEPTED)
            else None
        )
    return {
        "case": case,
        "block_bytes": len(data),
        "payload_bytes": parse_header(data).uncompressed_size,
        "map_bytes": summary.map_bytes if summary else None,
        "peak_growth_bytes": peak * 1024,
        "seconds": round(seconds, 3),
        "outcome": outcome,
    }


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(measure(name)), flush=True)
