"""Small valid processes, streams and blocks for metadata tests."""

from __future__ import annotations

import dataclasses

from blocklake.format.schema import event_types
from blocklake.stores.models import BlockInfo, ProcessInfo, StreamInfo

NOV_2026_NS = 1_794_000_000_000_000_000
"""A moment in November 2026 (UTC)."""


def a_process(process_id: str = "p1", **changes: object) -> ProcessInfo:
    process = ProcessInfo(
        process_id=process_id,
        exe="/usr/bin/game",
        username="ada",
        computer="rig-01",
        start_time_ns=NOV_2026_NS,
        start_ticks=123_456_789_012,
        tick_frequency=1_000_000_000,
        parent_process_id=None,
        properties={"build": "1.2.3", "région": "ü"},
    )
    return dataclasses.replace(process, **changes)


def a_stream(stream_id: str = "s1", process_id: str = "p1", **changes: object) -> StreamInfo:
    log_entry = next(iter(event_types(1).values()))
    stream = StreamInfo(
        stream_id=stream_id,
        process_id=process_id,
        tags=("log",),
        layout={log_entry.id: log_entry},
        properties={"thread": "main"},
    )
    return dataclasses.replace(stream, **changes)


def a_block(
    block_id: str = "b1",
    stream_id: str = "s1",
    sequence: int = 0,
    begin_time_ns: int = NOV_2026_NS,
    duration_ns: int = 1_000_000_000,
    **changes: object,
) -> BlockInfo:
    block = BlockInfo(
        block_id=block_id,
        stream_id=stream_id,
        process_id="p1",
        sequence=sequence,
        begin_ticks=10 + sequence * 1000,
        end_ticks=10 + sequence * 1000 + 999,
        begin_time_ns=begin_time_ns,
        end_time_ns=begin_time_ns + duration_ns,
        object_count=42,
        payload_size=4096,
        object_key=f"raw/tenant=t/{stream_id}/{block_id}.blk",
    )
    return dataclasses.replace(block, **changes)
