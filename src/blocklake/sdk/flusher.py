"""The flusher thread: drains the record buffers into blocks, by size and by time, and hands
them to the uploader thread, so that draining and encoding never wait on the network.

It keeps the memory budget: events held past ``flush_at`` (estimated bytes, measured on samples
of each buffer's events) and blocks waiting for upload share ``max_memory`` bytes. It counts
every event it gives up, and records the losses as the SDK's own metric so that they show up in
SQL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from blocklake.sdk import attachments, recording
from blocklake.sdk.recording import Buffer, take, take_dropped
from blocklake.sdk.stats import Counters
from blocklake.sdk.streams import (
    async_writer,
    log_writer,
    metrics_writer,
    thread_writer,
    user_writer,
)
from blocklake.sdk.uploader import Uploader

DROPPED_METRIC = "blocklake.sdk.dropped_events"
_log = logging.getLogger("blocklake.sdk")
_SAMPLES = 16
"""Events of a drained buffer whose size is measured to estimate its bytes per event."""


class Flusher:
    def __init__(
        self,
        uploader: Uploader,
        counters: Counters,
        *,
        interval: float = 1.0,
        max_memory: int = recording.DEFAULT_MEMORY_BYTES,
    ) -> None:
        self.uploader = uploader
        self.counters = counters
        self.process = uploader.process
        self.interval = interval
        self.max_memory = max_memory
        self._stopping = False
        self._rounds = 0
        """Rounds completed."""
        self._in_round = False
        self._wanted_rounds = 0
        """``flush()`` callers wait until this many rounds are complete."""
        self._round_serial = 0
        """The uploader's last block serial when the last round ended."""
        self._dropped_reported = 0
        """Dropped events already recorded as the metric."""
        self._dropped_at_flush = 0
        """Dropped events when the last ``flush()`` returned."""
        self._round_done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="blocklake-flusher", daemon=True)
        properties = {"pid": str(os.getpid())}
        for buffer, make in (
            (recording.logs, log_writer),
            (recording.measures, metrics_writer),
            (recording.async_events, async_writer),
            (attachments.events, attachments.writer),
        ):
            buffer.stream = make(properties)
        # their streams belonged to the previous process
        for buffer in (*recording.thread_buffers, *recording.user_buffers):
            buffer.stream = None
        uploader.apply = self.apply

    def start(self) -> None:
        self.uploader.start()
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Sends everything recorded before this call. True if the server acknowledged all of
        it within ``timeout`` and no event was dropped since the previous ``flush()``."""
        deadline = time.monotonic() + timeout
        if not self._thread.is_alive():
            return False
        with self._round_done:
            # A round under way may have drained its buffers before this call: wait for the next.
            target = self._rounds + (2 if self._in_round else 1)
            self._wanted_rounds = max(self._wanted_rounds, target)
            recording.wake_flusher.set()
            if not self._round_done.wait_for(lambda: self._rounds >= target, timeout):
                return False
            serial = self._round_serial
        if not self.uploader.wait_resolved(serial, deadline):
            return False
        dropped = self.counters.dropped_total
        lost, self._dropped_at_flush = dropped != self._dropped_at_flush, dropped
        return not lost

    def stop(self, timeout: float = 10.0) -> int:
        """Last round, then both threads end; returns the events it had to abandon (not sent
        within ``timeout``)."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        recording.wake_flusher.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return self.uploader.stop(deadline)

    def buffered(self) -> int:
        """Events waiting in the record buffers."""
        return sum(len(buffer) for buffer in self._buffers())

    def _run(self) -> None:
        while True:
            recording.wake_flusher.wait(self.interval)
            with self._round_done:
                recording.wake_flusher.clear()
                self._in_round = True
            stopping = self._stopping
            try:
                self.run_once()
            except Exception:  # the flusher must outlive any bug: log it and go on
                _log.exception("blocklake flusher round failed")
            with self._round_done:
                self._in_round = False
                self._rounds += 1
                self._round_serial = self.uploader.last_serial
                if self._rounds < self._wanted_rounds:
                    recording.wake_flusher.set()
                self._round_done.notify_all()
            if stopping:
                return

    def run_once(self) -> None:
        """One round: report losses, drain every buffer, encode, queue the blocks."""
        self._report_drops()
        drained = self._drain()
        limit = self.uploader.max_block_bytes
        counters = self.counters
        for buffer, events in drained:
            try:
                blocks, repairs = buffer.stream.blocks(events, limit)
            except Exception:  # a bug, not a value: lose these events, counted, not the round
                _log.exception("blocklake: %d events could not be encoded", len(events))
                counters.drop("bad_value", len(events))
                continue
            with counters.lock:
                counters.coerced += repairs.coerced
                counters.truncated += repairs.truncated
                counters.dropped["bad_value"] += repairs.dropped
            for block in blocks:
                self.uploader.put(block)
        self._keep_budget()
        self._forget_ended_threads()

    @staticmethod
    def _forget_ended_threads() -> None:
        """Threads that ended: their events drained this round are encoded, named."""
        names = recording.thread_names
        for thread_id, thread in list(names.items()):
            if not thread.is_alive():
                names.pop(thread_id, None)

    def _report_drops(self) -> None:
        dropped = self.counters.dropped_total
        if dropped > self._dropped_reported:
            # appended past the record path's checks: one event, sent even during shutdown
            recording.measures.append(
                (
                    recording.now(),
                    DROPPED_METRIC,
                    "events",
                    float(dropped - self._dropped_reported),
                    None,
                )
            )
            self._dropped_reported = dropped
            with self.counters.lock:
                self.counters.own_metrics += 1

    def _buffers(self) -> list[Buffer]:
        buffers = [recording.logs, recording.measures, recording.async_events, attachments.events]
        buffers.extend(recording.user_buffers)
        with recording._thread_buffers_lock:
            # Retire by identity: buffers are lists, and list.remove() would take the first
            # *equal* one, so an empty buffer of a finished thread could retire a live thread's.
            recording.thread_buffers[:] = [
                b for b in recording.thread_buffers if b or b.owner.is_alive()
            ]
            buffers.extend(recording.thread_buffers)
        return buffers

    def _drain(self) -> list[tuple[Buffer, list]]:
        drained, events_total, full, held = [], 0, 0, 0
        for buffer in self._buffers():
            full += take_dropped(buffer)
            events = take(buffer)
            if not events:
                continue
            if buffer.stream is None and isinstance(buffer, recording.TypeBuffer):
                buffer.stream = user_writer(buffer)
            elif buffer.stream is None:
                owner = buffer.owner
                buffer.stream = thread_writer(
                    {"thread_name": owner.name, "thread_id": str(owner.native_id)}
                )
            buffer.event_bytes = _event_bytes(events)
            held += len(events) * buffer.event_bytes
            events_total += len(events)
            drained.append((buffer, events))
        bad = recording.bad_values.take()
        with self.counters.lock:
            self.counters.drained += events_total + bad
            self.counters.dropped["buffer_full"] += full
            self.counters.dropped["bad_value"] += bad
        recording.set_overflow_bytes(held)  # what this round holds until it is encoded
        return drained

    def _keep_budget(self) -> None:
        """Buffers past ``flush_at`` and waiting blocks share ``max_memory``: the oldest blocks
        go first, then the record path drops new events."""
        flush_at = recording._flush_at
        held = sum(max(0, len(b) - flush_at) * b.event_bytes for b in self._buffers())
        recording.set_overflow_bytes(held)
        self.uploader.trim(self.max_memory - held)
        waiting = self.uploader.queued_bytes + attachments.held_bytes()
        recording.configure(memory_budget=self.max_memory - waiting)

    def apply(self, response: dict) -> None:
        """Settings the server sent back for this process: applied at once, no redeploy."""
        settings = response.get("settings") or {}
        if not isinstance(settings, dict):
            return
        level = settings.get("log_level")
        if isinstance(level, str) and level.upper() in recording.LEVEL_CODES:
            recording.configure(max_level=recording.LEVEL_CODES[level.upper()])
        interval = settings.get("flush_interval_s")
        if isinstance(interval, int | float) and 0.05 <= interval <= 600:
            self.interval = float(interval)


def _event_bytes(events: list) -> int:
    """Estimated memory of one event: the tuple, its values (shared strings counted as if
    they were not, erring high) and its slot in the list, from a few evenly spaced samples."""
    step = max(1, len(events) // _SAMPLES)
    sample = events[::step]
    size = sys.getsizeof
    total = 0
    for event in sample:
        total += size(event) + 8
        for value in event:
            total += size(value)
            if type(value) is dict:
                total += sum(size(k) + size(v) for k, v in value.items())
    return max(64, total // len(sample))
