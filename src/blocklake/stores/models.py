"""What the metadata store keeps: processes, streams and blocks."""

from __future__ import annotations

from dataclasses import dataclass, field

from blocklake.format.schema import Layout


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    process_id: str
    exe: str
    username: str
    computer: str
    start_time_ns: int
    start_ticks: int
    tick_frequency: int
    parent_process_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def time_ns(self, ticks: int) -> int:
        """Wall time of a tick of this process's clock, exactly (schemas/transit-v1.md):
        ``start_time_ns + floor((ticks - start_ticks) * 10**9 / tick_frequency)``; the ETL
        computes the same (``etl.rows.times_ns``)."""
        delta = ticks - self.start_ticks
        return self.start_time_ns + delta * 1_000_000_000 // self.tick_frequency


@dataclass(frozen=True, slots=True)
class StreamInfo:
    stream_id: str
    process_id: str
    tags: tuple[str, ...]
    layout: Layout
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlockInfo:
    block_id: str
    stream_id: str
    process_id: str
    sequence: int
    begin_ticks: int
    end_ticks: int
    begin_time_ns: int
    end_time_ns: int
    object_count: int
    payload_size: int
    object_key: str


@dataclass(frozen=True, slots=True)
class ConversionFailure:
    """A block whose conversion failed ``attempts`` times, the last time for ``reason``."""

    block_id: str
    object_key: str
    attempts: int
    reason: str
    failed_time_ns: int
