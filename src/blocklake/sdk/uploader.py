"""The uploader thread: sends encoded blocks in order, so that the flusher never waits on the
network.

Each block is tried until the server takes it, within bounds: transient failures (connection
errors, timeouts, 408, 425, 429, 5xx) are retried with exponential backoff and jitter, or after
the server's ``Retry-After``, until the block is ``retry_for`` seconds old; a 404 for an unknown
process or stream registers them again and resends (the server lost its metadata); any other 4xx
gives up that block only. Blocks waiting share the memory budget with the record buffers: past
it the oldest are given up. Every event given up is counted by reason.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from blocklake.sdk.stats import Counters
from blocklake.sdk.streams import Block, StreamWriter
from blocklake.sdk.transport import DeliveryError, Transport

_log = logging.getLogger("blocklake.sdk")

DEFAULT_MAX_BLOCK_BYTES = 1024 * 1024
"""Block size until the server states its limit (``limits.max_block_bytes`` in its answers):
well below the local server's 4 MiB and API Gateway's payload limits."""
MIN_BLOCK_BYTES = 64 * 1024
"""A stated limit below this is taken as this (a smaller block could not hold a large log)."""
MAX_RETRY_AFTER = 60.0
"""A longer ``Retry-After`` is obeyed as this: the block's age bound still applies."""
MAX_REREGISTRATIONS = 3
"""Registrations repeated for one block before a 404 counts as a refusal."""
ROTATE_AFTER = 3
"""500 answers to a block after which it goes to the back of the queue, so that a block the
server fails on (a bug on that block only) holds up no other. Other transient failures (the
server away or overloaded: connection errors, 429, 503) keep the order."""
MAX_CUTS = 3
"""Uploads of one block larger than the server's limit cut while the server answers small
requests, after which the block is taken as refused for its size (some servers close the
connection on a body over their limit without reading it: the client sees a broken pipe, never
the 413). A block at or below the limit (stated by the server, else ``DEFAULT_MAX_BLOCK_BYTES``)
is never taken so: a cut is then a connection error like any other, retried within
``retry_for`` (a resend of a block the server stored is answered ``duplicate``)."""
MAX_STREAMS_REMEMBERED = 4096
"""Stream registrations remembered; an older stream's next block registers it again."""


class Uploader:
    def __init__(
        self,
        transport: Transport,
        process: dict,
        counters: Counters,
        *,
        apply: Callable[[dict], None] = lambda answer: None,
        retry_for: float = 300.0,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.transport = transport
        self.process = process
        self.counters = counters
        self.apply = apply
        """Called with each answer (settings from the back-channel)."""
        self.retry_for = retry_for
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._pause: float | None = None
        """The next pause after a transient failure, whichever block failed (None: the first,
        ``backoff``)."""
        self.max_block_bytes = DEFAULT_MAX_BLOCK_BYTES
        self.stated_limit: int | None = None
        """``limits.max_block_bytes`` as the server last stated it (None: never stated)."""
        self.queue: deque[Block] = deque()
        self.current: Block | None = None
        """The block being sent, out of ``queue``."""
        self.queued_bytes = 0
        """Bytes of the blocks in ``queue`` and ``current``."""
        self._serial = 0
        self._process_registered = False
        self._streams_registered: dict[object, None] = {}
        """Stream ids registered, oldest first, at most ``MAX_STREAMS_REMEMBERED`` (a thread
        per request makes a stream per thread: registering one again is harmless)."""
        self._stopping = False
        self._deadline = float("inf")
        """``shutdown``: past this, what is left is abandoned."""
        self._abandoned = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="blocklake-uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # --- called by the flusher and by users' threads ------------------------------------

    def put(self, block: Block) -> None:
        with self._changed:
            if self._abandoned:  # encoded after shutdown's deadline
                self.counters.drop("abandoned_at_exit", block.object_count)
                return
            self._serial += 1
            block.serial = self._serial
            self.queue.append(block)
            self.queued_bytes += len(block.data)
            self._changed.notify_all()

    def trim(self, budget: int) -> None:
        """Gives up the oldest waiting blocks while all of them take more than ``budget``."""
        with self._changed:
            while self.queued_bytes > budget and self.queue:
                block = self.queue.popleft()
                self.queued_bytes -= len(block.data)
                self.counters.drop("queue_full", block.object_count)
                _log.warning(
                    "blocklake: memory budget full, %d events given up", block.object_count
                )
            self._changed.notify_all()

    @property
    def last_serial(self) -> int:
        return self._serial

    def resolved_through(self) -> int:
        """Every block up to this serial is acknowledged or given up."""
        with self._changed:
            return self._resolved_through()

    def _resolved_through(self) -> int:
        # Mostly in order, but a block failing again and again goes to the back of the queue.
        serials = [block.serial for block in self.queue]
        if self.current is not None:
            serials.append(self.current.serial)
        return min(serials) - 1 if serials else self._serial

    def wait_resolved(self, serial: int, deadline: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self._resolved_through() >= serial, max(0.0, deadline - time.monotonic())
            )

    def in_flight(self) -> int:
        """Events in blocks not yet acknowledged nor given up."""
        with self._changed:
            current = self.current.object_count if self.current is not None else 0
            return current + sum(block.object_count for block in self.queue)

    def stop(self, deadline: float) -> int:
        """Sends what is queued until ``deadline`` (``time.monotonic``), then gives the rest up;
        returns the events given up."""
        with self._changed:
            self._stopping = True
            self._deadline = deadline
            self._changed.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._changed:
            self._abandoned = True  # an answer arriving after this is not counted twice
            left = list(self.queue) + ([self.current] if self.current is not None else [])
            self.queue.clear()
            self.current = None
            self.queued_bytes = 0
            abandoned = sum(block.object_count for block in left)
            self.counters.drop("abandoned_at_exit", abandoned)
            self._changed.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(0.2)  # it ends at once unless a request is under way
        return abandoned

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.queue or self._stopping)
                if not self.queue or self._abandoned:
                    return
                block = self.current = self.queue.popleft()
            try:
                outcome = self._deliver(block)
            except Exception:  # the uploader must outlive any bug: log it, give the block up
                _log.exception("blocklake uploader failed on a block")
                self._resolve(block, "refused")
                continue
            if outcome == "deadline":  # shutdown's: stop() abandons what is left
                return
            if outcome == "rotate":
                with self._changed:
                    if self._abandoned:
                        return
                    self.queue.append(block)
                    self.current = None

    def _resolve(self, block: Block, dropped: str | None) -> None:
        """The block's fate: acknowledged (``dropped`` None) or given up for that reason."""
        with self._changed:
            if self._abandoned:
                return
            if dropped is None:
                self._acknowledged(block)
            else:
                self.counters.drop(dropped, block.object_count)
            self.queued_bytes -= len(block.data)
            self.current = None
            self._changed.notify_all()

    def _deliver(self, block: Block) -> str:
        """``"done"`` (acknowledged or given up), ``"rotate"`` (the server answered 500
        ``ROTATE_AFTER`` times: let the others go first) or ``"deadline"`` (shutdown's)."""
        repeated = failures = cuts = 0
        while True:
            sending = False
            try:
                self._register(block.stream)
                sending = True
                answer = self.transport.post_block(block.data)
            except DeliveryError as error:
                self._learn(error.limits)
                if error.status == 413 and not error.limits:
                    self._shrink_below(block)
                if sending and self._cut_for_its_size(block, error):
                    cuts += 1
                    if cuts >= MAX_CUTS:
                        self._shrink_below(block)
                        _log.error(
                            "blocklake: the server cuts the upload of a %d-byte block, taken as "
                            "refused unread for its size: %d events lost",
                            len(block.data),
                            block.object_count,
                        )
                        self._resolve(block, "refused")
                        return "done"
                if error.kind == "unknown" and repeated < MAX_REREGISTRATIONS:
                    repeated += 1
                    self._forget(error.code, block.stream)
                    continue
                if error.kind != "transient":
                    _log.error(
                        "blocklake: block refused, %d events lost: %s", block.object_count, error
                    )
                    self._resolve(block, "refused")
                    return "done"
                age = time.monotonic() - block.created
                if age > self.retry_for:
                    _log.error(
                        "blocklake: gave up a block after retrying it for %.1f s (retry_for "
                        "%.0f s), %d events lost: %s",
                        age,
                        self.retry_for,
                        block.object_count,
                        error,
                    )
                    self._resolve(block, "retries_exhausted")
                    return "done"
                with self.counters.lock:
                    self.counters.retries += 1
                # The pause grows across blocks: moving on to another block is no reason to
                # press a server that is away.
                pause = self._pause or self.backoff
                wait = error.retry_after if error.retry_after is not None else _jittered(pause)
                self._pause = min(pause * 2, self.max_backoff)
                # Never wait past the block's retry_for: a longer Retry-After would only delay
                # the verdict (and hold up every later block) without a chance to send it.
                left = self.retry_for - (time.monotonic() - block.created)
                wait = max(0.0, min(wait, MAX_RETRY_AFTER, left + 0.001))
                started = time.monotonic()
                if not self._sleep(wait):
                    return "deadline"
                _log.debug(
                    "blocklake: retrying a block after waiting %.2f s (%s)",
                    time.monotonic() - started,
                    error,
                )
                failures += 1 if error.status == 500 else 0
                if failures >= ROTATE_AFTER and self.queue:
                    return "rotate"
                continue
            self._pause = None
            self._learn(answer.get("limits"))
            self.apply(answer)
            self._resolve(block, None)
            return "done"

    def _acknowledged(self, block: Block) -> None:
        counters = self.counters
        with counters.lock:
            counters.acknowledged += block.object_count
            counters.blocks_sent += 1
            counters.bytes_sent += len(block.data)

    def _sleep(self, seconds: float) -> bool:
        """Waits ``seconds``; False if shutdown's deadline comes first."""
        with self._changed:
            end = min(time.monotonic() + seconds, self._deadline)
            past = lambda: time.monotonic() >= self._deadline  # noqa: E731
            self._changed.wait_for(past, end - time.monotonic())
            return time.monotonic() < self._deadline

    def _register(self, stream: StreamWriter) -> None:
        if not self._process_registered:
            answer = self.transport.post_json("/v1/processes", self.process)
            self._learn(answer.get("limits"))
            self.apply(answer)
            self._process_registered = True
        if stream.stream_id not in self._streams_registered:
            document = stream.registration(self.process["process_id"])
            self.apply(self.transport.post_json("/v1/streams", document))
            self._streams_registered[stream.stream_id] = None
            if len(self._streams_registered) > MAX_STREAMS_REMEMBERED:
                del self._streams_registered[next(iter(self._streams_registered))]

    def _forget(self, code: str, stream: StreamWriter) -> None:
        """The server does not know the process or stream (it lost its metadata): register
        again before resending."""
        _log.warning("blocklake: server answered %s, registering again", code)
        with self.counters.lock:
            self.counters.registrations_repeated += 1
        if code == "unknown_process":
            self._process_registered = False
            self._streams_registered.clear()
        self._streams_registered.pop(stream.stream_id, None)

    def _cut_for_its_size(self, block: Block, error: DeliveryError) -> bool:
        """Whether the connection was cut (no answer) while sending a large block although the
        server answers a small request: a server may refuse a body over its limit unread."""
        if error.status or len(block.data) <= max(self.size_limit(), MIN_BLOCK_BYTES):
            return False  # a block the server takes by its size: the cut is the network's
        try:
            self.apply(self.transport.post_json("/v1/processes", self.process))  # idempotent
        except DeliveryError:
            return False  # the server is away, not refusing
        return True

    def _shrink_below(self, block: Block) -> None:
        """Later blocks smaller than this refused one, when the server did not say its limit."""
        self.max_block_bytes = max(MIN_BLOCK_BYTES, min(self.max_block_bytes, len(block.data) // 2))

    def size_limit(self) -> int:
        """The largest block the server takes by its size, as far as it told us: its stated
        limit, else the default (which every server we know takes)."""
        return self.stated_limit if self.stated_limit is not None else DEFAULT_MAX_BLOCK_BYTES

    def _learn(self, limits: object) -> None:
        if isinstance(limits, dict):
            size = limits.get("max_block_bytes")
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                self.stated_limit = size
                self.max_block_bytes = max(size, MIN_BLOCK_BYTES)


def _jittered(pause: float) -> float:
    return pause * random.uniform(0.5, 1.0)
