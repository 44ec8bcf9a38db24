"""The background thread: drains buffers into blocks and uploads them, by size and by time.

It registers the process and each stream before their first block, keeps blocks that could not
be sent for the next round (up to a byte budget), counts every event it has to give up, and
records those counts as the SDK's own metric so that loss shows up in SQL.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from blocklake.sdk import recording
from blocklake.sdk.recording import Buffer, take, take_dropped
from blocklake.sdk.streams import (
    Block,
    StreamWriter,
    async_writer,
    log_writer,
    metrics_writer,
    thread_writer,
)
from blocklake.sdk.transport import DeliveryError, Transport

DROPPED_METRIC = "blocklake.sdk.dropped_events"
_log = logging.getLogger("blocklake.sdk")


class Flusher:
    def __init__(
        self,
        transport: Transport,
        process: dict,
        *,
        interval: float = 1.0,
        max_pending_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.transport = transport
        self.process = process
        self.interval = interval
        self.max_pending_bytes = max_pending_bytes
        self.process_registered = False
        self.pending: deque[Block] = deque()
        self.dropped_total = 0
        """Events given up since start: full buffers, failed uploads. Also sent as a metric."""
        self._stopping = False
        self._rounds = 0
        """Rounds completed."""
        self._in_round = False
        self._wanted_rounds = 0
        """``flush()`` callers wait until this many rounds are complete."""
        self._sent_through = 0
        """The last round after which nothing was left unsent: all it drained reached the server."""
        self._round_done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="blocklake-flusher", daemon=True)
        properties = {"pid": str(os.getpid())}
        for buffer, make in (
            (recording.logs, log_writer),
            (recording.measures, metrics_writer),
            (recording.async_events, async_writer),
        ):
            buffer.stream = make(properties)
        for buffer in recording.thread_buffers:  # their streams belonged to the previous process
            buffer.stream = None

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Sends everything recorded before this call; False if that took longer than timeout
        or if some blocks are still waiting for the server."""
        if not self._thread.is_alive():
            return False
        with self._round_done:
            # A round under way may have drained its buffers before this call: wait for the next.
            target = self._rounds + (2 if self._in_round else 1)
            self._wanted_rounds = max(self._wanted_rounds, target)
            recording.wake_flusher.set()
            return self._round_done.wait_for(lambda: self._sent_through >= target, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Last round, then the thread ends."""
        self._stopping = True
        recording.wake_flusher.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

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
                if not self.pending:
                    self._sent_through = self._rounds
                if self._rounds < self._wanted_rounds:
                    recording.wake_flusher.set()
                self._round_done.notify_all()
            if stopping:
                return

    def run_once(self) -> None:
        blocks, dropped = self._drain()
        self._give_up(dropped)
        self.pending.extend(blocks)
        self._send_pending()

    def _buffers(self) -> list[Buffer]:
        buffers = [recording.logs, recording.measures, recording.async_events]
        with recording._thread_buffers_lock:
            finished = [b for b in recording.thread_buffers if not b.owner.is_alive() and not b]
            for buffer in finished:
                recording.thread_buffers.remove(buffer)
            buffers.extend(recording.thread_buffers)
        return buffers

    def _drain(self) -> tuple[list[Block], int]:
        blocks, dropped = [], 0
        for buffer in self._buffers():
            dropped += take_dropped(buffer)
            events = take(buffer)
            if not events:
                continue
            if buffer.stream is None:
                owner = buffer.owner
                buffer.stream = thread_writer(
                    {"thread_name": owner.name, "thread_id": str(owner.native_id)}
                )
            try:
                blocks.append(buffer.stream.encode(events))
            except Exception:  # one bad event (a metric value not a number) loses its block only
                _log.exception("blocklake: %d events could not be encoded", len(events))
                dropped += len(events)
        return blocks, dropped

    def _give_up(self, events: int) -> None:
        if events:
            self.dropped_total += events
            recording.metric(DROPPED_METRIC, float(events), "events")

    def _send_pending(self) -> None:
        while self.pending:
            block = self.pending[0]
            try:
                self._register(block.stream)
                self._apply(self.transport.post_block(block.data))
            except DeliveryError as error:
                if not error.permanent:
                    self._trim_pending()
                    _log.warning("blocklake: will retry %d blocks: %s", len(self.pending), error)
                    return
                _log.error(
                    "blocklake: block rejected, %d events lost: %s", block.object_count, error
                )
                self._give_up(block.object_count)
            self.pending.popleft()

    def _register(self, stream: StreamWriter) -> None:
        if not self.process_registered:
            self._apply(self.transport.post_json("/v1/processes", self.process))
            self.process_registered = True
        if not stream.registered:
            self._apply(
                self.transport.post_json(
                    "/v1/streams", stream.registration(self.process["process_id"])
                )
            )
            stream.registered = True

    def _trim_pending(self) -> None:
        """While the server is away, keep the newest blocks that fit the byte budget."""
        size = sum(len(block.data) for block in self.pending)
        while size > self.max_pending_bytes and len(self.pending) > 1:
            block = self.pending.popleft()
            size -= len(block.data)
            self._give_up(block.object_count)

    def _apply(self, response: dict) -> None:
        """Settings the server sent back for this process: applied at once, no redeploy."""
        settings = response.get("settings") or {}
        level = settings.get("log_level")
        if isinstance(level, str) and level.upper() in recording.LEVEL_CODES:
            recording.configure(max_level=recording.LEVEL_CODES[level.upper()])
        interval = settings.get("flush_interval_s")
        if isinstance(interval, int | float) and 0.05 <= interval <= 600:
            self.interval = float(interval)
