"""The SDK's own counters: what was recorded, what the server acknowledged, what was lost and
why. They add up: ``recorded == acknowledged + sum(dropped.values()) + pending``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

DROP_REASONS = (
    "buffer_full",
    "bad_value",
    "refused",
    "queue_full",
    "retries_exhausted",
    "abandoned_at_exit",
    "after_shutdown",
)
"""Why events were given up: the memory budget was full when they were recorded; a value could
not be converted; the server refused their block (a 4xx); blocks waiting for upload took the
whole budget (oldest given up); retries went on longer than ``retry_for``; the process exited
(``shutdown``) before the server took them; they were recorded after ``shutdown`` (nothing
sends them; until ``init`` again)."""


@dataclass
class Counters:
    """Updated by the flusher and uploader threads under ``lock``; ``snapshot`` for readers."""

    drained: int = 0
    """Events taken from the buffers by the flusher."""
    acknowledged: int = 0
    coerced: int = 0
    truncated: int = 0
    blocks_sent: int = 0
    bytes_sent: int = 0
    retries: int = 0
    registrations_repeated: int = 0
    own_metrics: int = 0
    """Events the SDK recorded itself (the ``blocklake.sdk.dropped_events`` metric)."""
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def drop(self, reason: str, events: int) -> None:
        with self.lock:
            self.dropped[reason] += events

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def snapshot(self, buffered: int, in_flight: int, after_shutdown: int = 0) -> dict:
        """The counters as a plain dict; ``buffered`` events wait in the record buffers and
        ``in_flight`` in blocks not yet acknowledged nor given up; ``after_shutdown`` events
        were recorded after ``shutdown`` (so were ``buffered`` ones then: nothing sends them)."""
        with self.lock:
            dropped = dict(self.dropped)
            dropped["after_shutdown"] += after_shutdown
            return {
                "recorded": self.drained + dropped["buffer_full"] + buffered + after_shutdown,
                "acknowledged": self.acknowledged,
                "pending": buffered + in_flight,
                "dropped": dropped,
                "coerced": self.coerced,
                "truncated": self.truncated,
                "blocks_sent": self.blocks_sent,
                "bytes_sent": self.bytes_sent,
                "retries": self.retries,
                "registrations_repeated": self.registrations_repeated,
                "own_metrics": self.own_metrics,
            }
