"""The record path: appends of small tuples to lists, and nothing else.

Everything an application calls per event lives here and is written for the interpreter's
speed: module globals rather than attributes, no allocation but the event tuple, tuples of ints
and strings only (the garbage collector untracks them), and one length check that also notices
when a buffer is due to be flushed. Encoding, compression and upload happen on the flusher
thread (``flusher.py``).

Buffers are lists shared with the flusher, which takes the first ``n`` events with ``buf[:n]``
then ``del buf[:n]``: each is atomic under the GIL and appends only go to the end, so no event
is lost or taken twice and the record path takes no lock.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar, TypeVar

now: Callable[[], int] = time.perf_counter_ns
"""The process clock: ticks are nanoseconds of the monotonic performance counter."""

TICK_FREQUENCY = 1_000_000_000

LEVEL_CODES = {"FATAL": 1, "ERROR": 2, "WARN": 3, "INFO": 4, "DEBUG": 5, "TRACE": 6}
"""Must match ``[log_levels]`` in schemas/events.toml (a test checks it): the SDK reads no TOML
file at import time."""

FATAL, ERROR, WARN, INFO, DEBUG, TRACE = 1, 2, 3, 4, 5, 6

_flush_at = 8192
"""Events in one buffer that wake the flusher before its timer."""
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
_memory_budget = DEFAULT_MEMORY_BYTES
"""Bytes that events past ``_flush_at`` in the buffers may take; the flusher lowers it by what
blocks waiting for upload take, so the two share one budget. Past it events are dropped and
counted."""
_overflow_bytes = 0
"""Estimated bytes of the events held past ``_flush_at``: added on the slow path, recomputed by
the flusher each round (so a count lost to a race between threads is corrected there)."""
EVENT_BYTES_GUESS = 256
"""A buffer's estimated bytes per event until the flusher has measured some of its events."""
_max_span_names = 4096
"""Span names kept (with their call site) by ``span()`` and ``async_span()``; spans with more
names are still recorded, each with a scope of its own that is forgotten once it is encoded."""
_max_level = INFO
"""Most verbose log level recorded; the server may change it through the back-channel."""

wake_flusher = threading.Event()


class DropCounter:
    """Counts drops from many threads without a lock: ``next`` on ``itertools.count`` is atomic
    under the GIL, where ``+= 1`` on an attribute can lose counts between threads."""

    __slots__ = ("_count", "_reads", "_reported")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0  # every read advances the count once too
        self._reported = 0

    def add(self) -> None:
        next(self._count)

    def _total(self) -> int:
        """Only the flusher reads: reads, unlike ``add``, are not safe from two threads at once."""
        value = next(self._count) - self._reads
        self._reads += 1
        return value

    @property
    def pending(self) -> int:
        """Dropped since the last ``take``."""
        return self._total() - self._reported

    def take(self) -> int:
        total = self._total()
        dropped, self._reported = total - self._reported, total
        return dropped


class Buffer(list):
    """One stream's pending events, with the count of those dropped because it was full."""

    __slots__ = ("drops", "event_bytes", "owner", "stack", "stream", "thread_id", "trace")

    def __init__(self, owner: threading.Thread | None = None) -> None:
        super().__init__()
        self.drops = DropCounter()
        self.event_bytes = EVENT_BYTES_GUESS
        """Estimated bytes one of its events takes in memory, measured by the flusher."""
        self.owner = owner
        """The thread whose spans this buffer holds (thread streams only)."""
        self.thread_id = (owner.native_id or 0) if owner is not None else 0
        """Its native id: what a log records (an int keeps the event tuple untracked by the
        garbage collector; a Thread object would not), named through ``thread_names``."""
        self.stream: object = None
        """The flusher's state for the stream these events go to, set by the flusher."""
        self.stack: list[int] = []
        """Ids of the thread spans open on ``owner``, outermost first (the record path's: logs
        name the innermost)."""
        self.trace: int | str = 0
        """The trace of the outermost open thread span: a root span id (whose trace id is made
        from it, ``trace_hex``) or a trace id taken from a context."""

    @property
    def dropped(self) -> int:
        """Events dropped since the flusher last counted them."""
        return self.drops.pending


logs = Buffer()
"""(ticks, level, target, message, properties or None, the thread's native id, its innermost
thread span id or 0, that span's trace (``Buffer.trace``), the context: an ``AsyncSpan``, a
``TraceContext`` or None). Ints, strings and None only in the common case, so the garbage
collector untracks the tuple."""
measures = Buffer()
"""(ticks, name, unit, value, attributes: a dict, an ``Attributes`` or None)"""
async_events = Buffer()
"""(scope id, ticks, span id, parent id, trace, remote parent id, attributes) for a begin;
(-scope id, ticks, span id) for an end, (-scope id, ticks, span id, exception type, message)
for one left by an exception; (0, ticks, span id, attributes) adds attributes to an open span"""

bad_values = DropCounter()
"""Events refused on the record path itself (``log`` with a level that is not a number)."""

thread_buffers: list[Buffer] = []
"""Every thread's span buffer; the flusher drains them and retires those of finished threads."""
_thread_buffers_lock = threading.Lock()
_local = threading.local()


def configure(
    *,
    flush_at: int | None = None,
    memory_budget: int | None = None,
    max_level: int | None = None,
    max_span_names: int | None = None,
) -> None:
    """``flush_at`` events per buffer wake the flusher; ``memory_budget`` bytes (estimated) may
    be held past that; ``max_span_names`` names keep a scope each."""
    global _flush_at, _memory_budget, _max_level, _max_span_names
    if flush_at is not None:
        _flush_at = flush_at
    if memory_budget is not None:
        _memory_budget = memory_budget
    if max_level is not None:
        _max_level = max_level
    if max_span_names is not None:
        _max_span_names = max_span_names


def set_overflow_bytes(value: int) -> None:
    """The flusher's recount of the bytes held past ``_flush_at``."""
    global _overflow_bytes
    _overflow_bytes = value


_closed = False
"""Set by ``shutdown``: no flusher will send what is recorded now. ``_flush_at`` is 0 meanwhile,
so every event takes the slow path (the fast path checks nothing more), which counts it."""
after_shutdown = DropCounter()
"""Events recorded after ``shutdown`` (until ``init`` again): counted, never sent."""
_warned_closed = False


def close() -> None:
    """``shutdown``: from now on every event is dropped and counted as ``after_shutdown``."""
    global _closed, _flush_at
    _closed, _flush_at = True, 0


def reopen() -> None:
    """``init``: events are recorded again (``configure`` sets ``_flush_at`` anew)."""
    global _closed, _warned_closed, after_shutdown
    _closed = _warned_closed = False
    after_shutdown = DropCounter()


def _closed_drop() -> None:
    global _warned_closed
    after_shutdown.add()
    if not _warned_closed:
        _warned_closed = True
        logging.getLogger("blocklake.sdk").warning(
            "blocklake: an event was recorded after shutdown(): it and any later ones are "
            "dropped, counted in stats()['dropped']['after_shutdown']"
        )


def _count_drop(buffer: Buffer) -> None:
    if _closed:
        _closed_drop()
    else:
        buffer.drops.add()


def _wake() -> None:
    if not wake_flusher.is_set():  # set() takes a lock and notifies: skip it when already set
        wake_flusher.set()


def _room(buffer: Buffer) -> bool:
    """Reserves an event's estimated bytes if the budget has room for them."""
    global _overflow_bytes
    if _overflow_bytes < _memory_budget:
        _overflow_bytes += buffer.event_bytes
        return True
    return False


def _overflow(buffer: Buffer, event: tuple) -> bool:
    """The slow path: wake the flusher, and keep the event only if there is room left."""
    _wake()
    if not _closed and _room(buffer):
        buffer.append(event)
        return True
    _count_drop(buffer)
    return False


class _DroppedSubtree:
    """Stands in for a thread's buffer from a dropped span begin to its end.

    Thread spans nest, so once a begin is dropped, everything until its end is dropped too and
    no end can close the wrong span. Its length is huge, so a begin's length check sends it to
    the slow path; an end (appended without a check: ends of kept begins always fit) arrives at
    ``append`` here and is counted instead.
    """

    __slots__ = ("buffer", "depth", "owner", "stack", "thread_id")

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.depth = 1
        self.owner = buffer.owner
        self.thread_id = buffer.thread_id
        self.stack = buffer.stack  # the same list: the record path pushes and pops through it

    @property
    def trace(self) -> int | str:
        return self.buffer.trace

    @trace.setter
    def trace(self, value: int | str) -> None:
        self.buffer.trace = value

    def __len__(self) -> int:
        return sys.maxsize

    def append(self, event: tuple) -> None:
        """A span end: the end of the dropped subtree's root puts the real buffer back."""
        if not event[0]:  # attributes of a dropped span
            return
        forget_scope(-event[0])
        self.depth -= 1
        if self.depth == 0:
            _local.spans = self.buffer
        _count_drop(self.buffer)


def _span_begin_overflow(
    buffer: Buffer | _DroppedSubtree, event: tuple
) -> Buffer | _DroppedSubtree:
    """The slow path of a begin; returns where this span's end must go."""
    _wake()
    _check_event_loop()
    if isinstance(buffer, _DroppedSubtree):
        buffer.depth += 1
        _count_drop(buffer.buffer)
        return buffer
    if not _closed and _room(buffer):
        buffer.append(event)
        return buffer
    _local.spans = dropped = _DroppedSubtree(buffer)
    _count_drop(buffer)
    return dropped


def take_dropped(buffer: Buffer) -> int:
    """The events ``buffer`` dropped since the last call (for the SDK's own metrics)."""
    return buffer.drops.take()


def take(buffer: Buffer) -> list:
    """The events recorded so far, removed from the buffer; appends may go on meanwhile."""
    count = len(buffer)
    events = buffer[:count]
    del buffer[:count]
    return events


def reset_after_fork() -> None:
    """In a forked child: the parent's pending events are the parent's to send, and its other
    threads do not exist here. Scopes stay valid: they describe code, not threads. Locks are
    made anew: a thread of the parent may have held one at the fork, and it is gone."""
    global _local, _thread_buffers_lock, wake_flusher
    global bad_values
    for buffer in (logs, measures, async_events, *user_buffers):
        del buffer[:]
        buffer.drops = DropCounter()
        buffer.stream = None
    bad_values = DropCounter()
    thread_buffers.clear()
    thread_names.clear()
    _local = threading.local()
    _thread_buffers_lock = threading.Lock()
    wake_flusher = threading.Event()
    set_overflow_bytes(0)


# --- correlation ------------------------------------------------------------------------------

_next_span_id = itertools.count((int.from_bytes(os.urandom(8), "little") >> 2) | 1).__next__
"""Span ids of both kinds, unique in the process and, from a random start below 2^62, unlikely
to meet another process's: a span's id is also its W3C span id (16 hex digits)."""
TRACE_PREFIX = os.urandom(8).hex()
"""The high half of the trace ids this process starts (the low half is the root span's id):
the process id's first 16 hex digits once ``init`` made it, which is how the lake spells the
traces of spans (their blocks carry the root's id only: ``trace_root``)."""


def set_trace_prefix(process_id: uuid.UUID) -> None:
    global TRACE_PREFIX
    TRACE_PREFIX = process_id.hex[:16]


def trace_hex(trace: int | str) -> str:
    """A trace as its W3C trace id (32 lowercase hex digits): a text taken from a context as
    is, a root span id with this process's random prefix."""
    return trace if type(trace) is str else f"{TRACE_PREFIX}{trace:016x}"


class TraceContext:
    """A W3C trace context (``traceparent``): the trace and the remote span the spans opened
    in it take as parent (``span_id`` 0: none, a trace started here)."""

    __slots__ = ("flags", "span_id", "trace")

    def __init__(self, trace: str, span_id: int = 0, flags: int = 1) -> None:
        self.trace, self.span_id, self.flags = trace, span_id, flags

    @classmethod
    def parse(cls, traceparent: str | bytes) -> TraceContext | None:
        """``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`` (later versions: the same
        first fields), else None; all-zero ids are invalid (W3C Trace Context). ``bytes`` (an
        ASGI header) are read as ASCII. Flags other than sampled (01) are remembered for the
        trace, so that its outgoing ``traceparent`` carries them on."""
        if type(traceparent) is bytes or type(traceparent) is bytearray:
            try:
                traceparent = traceparent.decode("ascii")
            except UnicodeDecodeError:
                return None
        if type(traceparent) is not str:
            return None
        parts = traceparent.strip().lower().split("-")
        if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
            return None
        version, trace, parent, flags = parts[:4]
        if (version == "00" and len(parts) != 4) or len(trace) != 32 or len(parent) != 16:
            return None
        try:
            span_id, flag_bits = int(parent, 16), int(flags, 16)
            int(trace, 16)
        except ValueError:
            return None
        if not span_id or trace == "0" * 32 or len(flags) != 2:
            return None
        if flag_bits == 1:
            if _trace_flags:
                _trace_flags.pop(trace, None)
        else:
            _trace_flags[trace] = flag_bits
            try:
                while len(_trace_flags) > MAX_TRACE_FLAGS:
                    _trace_flags.pop(next(iter(_trace_flags)), None)
            except RuntimeError:  # another thread added one meanwhile: trimmed next time
                pass
        return cls(trace, span_id, flag_bits)


_trace_flags: dict[str, int] = {}
"""Flags of the traces taken from a ``traceparent`` whose flags were not 01 (sampled), the
latest ``MAX_TRACE_FLAGS``: outgoing ``traceparent`` of those traces carry them on."""
MAX_TRACE_FLAGS = 4096


def _traceparent(trace: str, span_id: int) -> str:
    return f"00-{trace}-{span_id:016x}-{_trace_flags.get(trace, 1):02x}"


_context: contextvars.ContextVar[AsyncSpan | TraceContext | None] = contextvars.ContextVar(
    "blocklake_context", default=None
)
"""The innermost async span, or the trace context, of the running task or thread."""


class _ContextScope:
    __slots__ = ("context", "token")

    def __init__(self, context: TraceContext) -> None:
        self.context = context

    def __enter__(self) -> TraceContext:
        self.token = _context.set(self.context)
        return self.context

    def __exit__(self, *exc: object) -> None:
        _context.reset(self.token)


def trace_context(traceparent: str | None = None) -> _ContextScope:
    """``with sdk.trace_context(request.headers.get("traceparent")):`` spans opened inside
    (thread spans that are roots on their thread, async spans) join that trace and take the
    remote span as parent; without a valid ``traceparent``, a new trace (random id)."""
    context = TraceContext.parse(traceparent) if traceparent else None
    return _ContextScope(context or TraceContext(os.urandom(16).hex()))


thread_names: dict[int, threading.Thread] = {}
"""Threads by native id, for the flusher to name the threads logs record by id; it forgets
those that ended once their events are encoded."""


def _thread_state() -> Buffer:
    """This thread's buffer (its spans, and what its logs refer to)."""
    try:
        return _local.spans
    except AttributeError:
        thread = threading.current_thread()
        buffer = Buffer(thread)
        _local.spans = buffer
        thread_names[buffer.thread_id] = thread
        with _thread_buffers_lock:
            thread_buffers.append(buffer)
        return buffer


def current_span() -> tuple[int, str] | None:
    """(span id, trace id) of the innermost open span (thread or async) of the caller, or of
    its trace context's remote span; None if there is none."""
    state = _thread_state()
    stack, context = state.stack, _context.get()
    if type(context) is AsyncSpan and (not stack or context.span_id > stack[-1]):
        return context.span_id, trace_hex(context.trace)
    if stack:
        return stack[-1], trace_hex(state.trace)
    if context is not None and context.span_id:
        return context.span_id, trace_hex(context.trace)
    return None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` to send with an outgoing call: the innermost open span as the
    parent, with the flags of the ``traceparent`` the trace came in with; None outside any span
    or trace context, and in a trace context begun without a valid ``traceparent`` until a span
    opens (its logs carry its trace id, but the header needs a parent span)."""
    span = current_span()
    if span is None:
        return None
    return _traceparent(span[1], span[0])


# --- logs -------------------------------------------------------------------------------------


def log(level: int, message: str, target: str = "", properties: dict | None = None) -> None:
    """``level``: 1 (FATAL) to 6 (TRACE), as the constants ``FATAL`` ... ``TRACE``, or one of
    the ``logging`` module's (10 DEBUG to 50 CRITICAL), converted."""
    try:
        if level > _max_level:
            if level < 10:
                return
            level = _from_logging(level)  # off the fast path: a logging level, 10 and up
            if level > _max_level:
                return
    except TypeError:  # a level that is not a number: dropped alone, counted
        bad_values.add()
        return
    _append_log(level, message, target, properties)


def _append_log(level: int, message: str, target: str, properties: object) -> None:
    try:
        state = _local.spans
    except AttributeError:
        state = _thread_state()
    stack = state.stack
    if stack:
        event = (now(), level, target, message, properties, state.thread_id, stack[-1], state.trace,
                 _context.get())  # fmt: skip
    else:
        event = (now(), level, target, message, properties, state.thread_id, 0, 0, _context.get())
    if len(logs) < _flush_at:
        logs.append(event)
    else:
        _overflow(logs, event)


def _from_logging(levelno: int) -> int:
    """A ``logging`` level number (10 and up) as the SDK's level."""
    for threshold, code in ((50, FATAL), (40, ERROR), (30, WARN), (20, INFO)):
        if levelno >= threshold:
            return code
    return DEBUG


def level_name(level: object) -> str | None:
    """``level`` as a name of ``LEVEL_CODES``: a name (any case; ``WARNING`` and ``CRITICAL``
    too), an SDK level (1-6) or a ``logging`` level (10-50); None if it is none of these."""
    if isinstance(level, str):
        name = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(level.upper(), level.upper())
        return name if name in LEVEL_CODES else None
    if type(level) is not int:
        return None
    code = level if 1 <= level <= 6 else _from_logging(level) if level >= 10 else None
    return None if code is None else next(n for n, c in LEVEL_CODES.items() if c == code)


def fatal(message: str, target: str = "", properties: dict | None = None) -> None:
    _append_log(1, message, target, properties)


def error(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 2:
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), 2, target, message, properties, state.thread_id, stack[-1],
                     state.trace, _context.get())  # fmt: skip
        else:
            event = (now(), 2, target, message, properties, state.thread_id, 0, 0, _context.get())
        if len(logs) < _flush_at:
            logs.append(event)
        else:
            _overflow(logs, event)


def warn(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 3:
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), 3, target, message, properties, state.thread_id, stack[-1],
                     state.trace, _context.get())  # fmt: skip
        else:
            event = (now(), 3, target, message, properties, state.thread_id, 0, 0, _context.get())
        if len(logs) < _flush_at:
            logs.append(event)
        else:
            _overflow(logs, event)


def info(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 4:
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), 4, target, message, properties, state.thread_id, stack[-1],
                     state.trace, _context.get())  # fmt: skip
        else:
            event = (now(), 4, target, message, properties, state.thread_id, 0, 0, _context.get())
        if len(logs) < _flush_at:
            logs.append(event)
        else:
            _overflow(logs, event)


def debug(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 5:
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), 5, target, message, properties, state.thread_id, stack[-1],
                     state.trace, _context.get())  # fmt: skip
        else:
            event = (now(), 5, target, message, properties, state.thread_id, 0, 0, _context.get())
        if len(logs) < _flush_at:
            logs.append(event)
        else:
            _overflow(logs, event)


def trace(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 6:
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), 6, target, message, properties, state.thread_id, stack[-1],
                     state.trace, _context.get())  # fmt: skip
        else:
            event = (now(), 6, target, message, properties, state.thread_id, 0, 0, _context.get())
        if len(logs) < _flush_at:
            logs.append(event)
        else:
            _overflow(logs, event)


# --- metrics ----------------------------------------------------------------------------------


def metric(
    name: str,
    value: float,
    unit: str = "",
    attributes: dict | str | None = None,
    *,
    properties: dict | None = None,
) -> None:
    """One sample. ``attributes`` (``properties`` is the same): a dict of str, int, float or
    bool values, kept by reference (do not change it afterwards), or an ``sdk.attributes(...)``
    set frozen once; a repeated set costs one reference per event in a block. Both given: one
    new dict of both (``attributes`` winning a key both have)."""
    if properties is not None:
        attributes = properties if attributes is None else _merged(properties, attributes)
    if len(measures) < _flush_at:
        measures.append((now(), name, unit, value, attributes))
    else:
        _overflow(measures, (now(), name, unit, value, attributes))


def _merged(properties: object, attributes: object) -> dict:
    """``properties`` and ``attributes`` of one metric as one dict (a frozen set read back)."""
    both: dict = {}
    for part in (properties, attributes):
        if isinstance(part, str):  # an sdk.attributes(...) set: its wire text, a JSON object
            try:
                part = json.loads(part) if part else {}
            except ValueError:
                part = {"attributes": part}
        if isinstance(part, dict):
            both.update(part)
        else:
            raise ValueError(
                f"metric: attributes and properties must be dicts, got {type(part).__name__}"
            )
    return both


# --- thread spans -----------------------------------------------------------------------------


_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
TRANSIENT_IDS = 1 << 40
"""Scope ids from here on belong to transient scopes: spans past the name bound."""
MAX_NAME_CHARS = 512
_next_scope_id = itertools.count(1).__next__
_transient_made = False
_next_transient_id = itertools.count(TRANSIENT_IDS).__next__


def _text(value: object) -> str:
    """A name as the wire carries it: a string (others converted), long ones cut visibly."""
    text = value if type(value) is str else str(value)
    if len(text) > MAX_NAME_CHARS:  # the marker of repair.truncated: the UTF-8 bytes cut
        kept = text[:MAX_NAME_CHARS]
        cut = len(text.encode("utf-8", "replace")) - len(kept.encode("utf-8", "replace"))
        text = f"{kept}...[truncated {cut} bytes]"
    return text


class SpanScope:
    """Where a span is opened: name, target, file, line. Recorded as an int id, so a span event
    is a tuple of two ints. Reuse one scope per call site (``span()`` caches them by name).

    ``with`` a scope is for synchronous code: inside a coroutine it raises ``TypeError``, since
    concurrent tasks on one thread would interleave their spans (use ``async_span`` there).
    """

    __slots__ = ("end_id", "file", "id", "line", "name", "target")

    registry: ClassVar[dict[int, SpanScope]] = {}
    """Scopes by id; the flusher resolves ids to names here. Id 0 is never used."""

    def __init__(
        self, name: str, target: str = "", file: str = "", line: int = 0, *, transient: bool = False
    ) -> None:
        self.name, self.target, self.file = _text(name), _text(target), _text(file)
        self.line = line if type(line) is int else 0
        # next() on a count and a dict store are atomic under the GIL: no lock needed
        self.id = _next_transient_id() if transient else _next_scope_id()
        SpanScope.registry[self.id] = self
        self.end_id = -self.id

    def __enter__(self) -> SpanScope:
        if sys._getframe(1).f_code.co_flags & _ASYNC_CODE:
            raise TypeError(
                f"'with sdk.span({self.name!r})' inside a coroutine: concurrent tasks would "
                f"interleave on this thread's spans; use 'async with sdk.async_span(...)'"
            )
        try:
            buffer = _local.spans
        except AttributeError:
            buffer = _new_thread_buffer()
        span_id = _next_span_id()
        stack = buffer.stack
        if stack:
            event = (self.id, now(), span_id)
        else:  # a root: its parent and trace come from the context, if any
            context = _context.get()
            buffer.trace = span_id if context is None else context.trace
            event = (self.id, now(), span_id, context)
        stack.append(span_id)
        if len(buffer) < _flush_at:
            buffer.append(event)
        else:
            _span_begin_overflow(buffer, event)
        return self

    def __exit__(self, exc_type: type | None, exc: object, traceback: object) -> None:
        try:
            buffer = _local.spans
        except AttributeError:  # a begin recorded before a fork, in a thread that is gone
            return
        if buffer.stack:
            buffer.stack.pop()
        if exc_type is None or exc_type is GeneratorExit:
            buffer.append((self.end_id, now()))
        else:
            buffer.append((self.end_id, now(), *exception_fields(exc_type, exc)))

    def __call__(self, function: F) -> F:
        return _instrument(function, self)


def transient_scopes_made() -> bool:
    """Whether a transient scope was ever made (the writers only look for them if so)."""
    return _transient_made


def forget_scope(scope_id: int) -> None:
    """A transient scope's span is encoded or dropped: nothing refers to its id any more."""
    if scope_id >= TRANSIENT_IDS:
        SpanScope.registry.pop(scope_id, None)


_warned_loop = False

LOOP_WARNING = (
    "blocklake: 'with sdk.span' (or @sdk.instrument) in a thread running an asyncio event loop: "
    "thread spans are right only if no 'await' happens inside them; concurrent tasks awaiting "
    "inside one (directly or through a helper context manager) interleave on this thread's "
    "spans and get wrong parents and durations: use 'async with sdk.async_span(...)' or "
    "@sdk.instrument_async there"
)


def _check_event_loop() -> None:
    """Off the fast path (a thread's first span, and each span begin past ``_flush_at``): warns
    once if this thread runs an asyncio event loop. The fast path checks only that the caller
    is not itself a coroutine (a ``TypeError``): a helper context manager hides the coroutine."""
    global _warned_loop
    asyncio = sys.modules.get("asyncio")
    if _warned_loop or asyncio is None:
        return
    if asyncio.events._get_running_loop() is not None:
        _warned_loop = True
        logging.getLogger("blocklake.sdk").warning(LOOP_WARNING)


def _new_thread_buffer() -> Buffer:
    _check_event_loop()
    return _thread_state()


def exception_fields(exc_type: type, exc: object) -> tuple[str, str]:
    """(type, message) of an exception a span was left by: the type's qualified name (module
    too, but for builtins), the message as ``str`` gives it, cut like names."""
    module = getattr(exc_type, "__module__", "")
    name = getattr(exc_type, "__qualname__", str(exc_type))
    try:
        message = str(exc)
    except Exception:
        message = f"<{name}>"
    return (name if module in ("builtins", "") else f"{module}.{name}"), _text(message)


def set_span_attributes(attributes: dict) -> None:
    """Adds ``attributes`` (str, int, float or bool values) to the innermost open span of the
    caller (thread or async); nothing outside a span."""
    state = _thread_state()
    stack, context = state.stack, _context.get()
    if type(context) is AsyncSpan and (not stack or context.span_id > stack[-1]):
        context.set_attributes(attributes)
    elif stack:
        state.append((0, now(), attributes))


class _ScopesByName(dict):
    """Span scopes by name, created on first use from the caller's location.

    ``span`` is this dict's own ``__getitem__``: a hit is a lookup in C with no Python frame,
    the cheapest way to turn a name into a scope on every call.
    """

    def __missing__(self, name: str) -> SpanScope:
        caller = sys._getframe(1)  # __getitem__ is C: frame 1 is the code that called span()
        return _named_scope(self, name, caller.f_globals.get("__name__", ""), caller)


def _named_scope(
    scopes: dict[str, SpanScope], name: str, target: str, caller: FrameType
) -> SpanScope:
    """The scope of a name seen for the first time: kept while there are fewer than
    ``_max_span_names``, else transient (used for one span, so memory stays flat)."""
    global _transient_made
    location = (caller.f_code.co_filename, caller.f_lineno)
    if len(scopes) >= _max_span_names:
        _transient_made = True
        return SpanScope(name, target, *location, transient=True)
    return scopes.setdefault(name, SpanScope(name, target, *location))


_scopes = _ScopesByName()
span: Callable[[str], SpanScope] = _scopes.__getitem__
"""``with span("name"):`` opens a thread span. The first call site of a name gives its module
(the target), file and line; for another target, or the very cheapest spans in hot loops, keep
a ``SpanScope`` in a module global."""


F = TypeVar("F", bound=Callable[..., Any])


def _scope_of(function: Callable, name: str | None) -> SpanScope:
    code = function.__code__
    return SpanScope(
        name or function.__qualname__,
        function.__module__,
        code.co_filename,
        code.co_firstlineno,
    )


def _instrument(function: F, scope: SpanScope) -> F:
    """The decorator's wrapper: the two appends inline, no context-manager calls."""
    begin, end = scope.id, scope.end_id
    if inspect.iscoroutinefunction(function):
        raise TypeError(
            f"{function.__qualname__} is a coroutine function: use @sdk.instrument_async "
            "(an async span per call; @sdk.instrument makes thread spans)"
        )

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            buffer = _local.spans
        except AttributeError:
            buffer = _new_thread_buffer()
        span_id = _next_span_id()
        stack = buffer.stack
        if stack:
            event = (begin, now(), span_id)
        else:
            context = _context.get()
            buffer.trace = span_id if context is None else context.trace
            event = (begin, now(), span_id, context)
        stack.append(span_id)
        if len(buffer) < _flush_at:
            buffer.append(event)
        else:
            buffer = _span_begin_overflow(buffer, event)
        try:
            result = function(*args, **kwargs)
        except BaseException as error:
            stack.pop()
            if type(error) is GeneratorExit:
                buffer.append((end, now()))
            else:
                buffer.append((end, now(), *exception_fields(type(error), error)))
            raise
        stack.pop()
        buffer.append((end, now()))
        return result

    return wrapper  # type: ignore[return-value]


def instrument(function: F | None = None, *, name: str | None = None) -> Any:
    """Decorator: one thread span per call, named after the function unless ``name`` is given."""
    if function is None:
        return lambda inner: _instrument(inner, _scope_of(inner, name))
    return _instrument(function, _scope_of(function, name))


# --- async spans ------------------------------------------------------------------------------

_async_scopes: dict[str, SpanScope] = {}


class AsyncSpan:
    """One async span: it may end on another thread or task than it began. Its parent is the
    innermost open span where it begins: the enclosing async span of the same context (which
    asyncio tasks inherit), or a thread span opened since, or the remote span of a trace
    context; or ``parent`` (another ``AsyncSpan``, or a ``traceparent``) for work handed to
    other tasks or threads."""

    __slots__ = ("attributes", "parent", "scope", "span_id", "stored", "token", "trace")

    def __init__(
        self,
        scope: SpanScope,
        attributes: dict | str | None = None,
        parent: AsyncSpan | str | None = None,
    ) -> None:
        self.scope = scope
        self.attributes = attributes
        self.parent = parent
        self.span_id = 0
        self.trace: int | str = 0

    def __enter__(self) -> AsyncSpan:
        span_id = self.span_id = _next_span_id()
        context = self.parent
        if context is None:
            context = _context.get()
        elif type(context) is str or type(context) is bytes:
            context = TraceContext.parse(context)
        try:
            state = _local.spans
            stack = state.stack
        except AttributeError:
            state, stack = None, ()
        remote = 0
        if stack and (type(context) is not AsyncSpan or stack[-1] > context.span_id):
            parent, self.trace = stack[-1], state.trace  # a thread span opened inside
        elif type(context) is AsyncSpan:
            parent, self.trace = context.span_id, context.trace
        elif context is not None:
            parent, self.trace, remote = 0, context.trace, context.span_id
        else:
            parent, self.trace = 0, span_id
        self.token = _context.set(self)
        event = (self.scope.id, now(), span_id, parent, self.trace, remote, self.attributes)
        if len(async_events) < _flush_at:
            async_events.append(event)
            self.stored = True
        else:
            self.stored = _overflow(async_events, event)
        return self

    def set_attributes(self, attributes: dict) -> None:
        """Adds ``attributes`` to this open span."""
        if self.stored:
            async_events.append((0, now(), self.span_id, attributes))

    @property
    def traceparent(self) -> str:
        """This span as the W3C ``traceparent`` of work it hands to another process."""
        return _traceparent(trace_hex(self.trace), self.span_id)

    def __exit__(self, exc_type: type | None, exc: object, traceback: object) -> None:
        # The end of a kept begin is always kept: ends are bounded by the begins kept.
        if self.stored:
            if exc_type is None or exc_type is GeneratorExit:
                async_events.append((self.scope.end_id, now(), self.span_id))
            else:
                fields = exception_fields(exc_type, exc)
                async_events.append((self.scope.end_id, now(), self.span_id, *fields))
        else:  # the end of a dropped begin is lost with it: an event, counted as its begin was
            forget_scope(self.scope.id)
            _count_drop(async_events)
        _context.reset(self.token)

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise TypeError(_NOT_A_DECORATOR)

    async def __aenter__(self) -> AsyncSpan:
        return self.__enter__()

    async def __aexit__(self, exc_type: type | None, exc: object, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)


_NOT_A_DECORATOR = (
    "sdk.async_span is a context manager ('async with sdk.async_span(\"name\"):'), not a "
    "decorator: decorate a coroutine function with @sdk.instrument_async (or "
    '@sdk.instrument_async(name="name"))'
)


def async_span(
    name: str,
    target: str | None = None,
    *,
    attributes: dict | str | None = None,
    parent: AsyncSpan | str | None = None,
) -> AsyncSpan:
    """``async with async_span("name"):`` (or ``with``): a new span each time it is entered,
    with ``attributes`` (str, int, float, bool values) and, for work handed over from another
    task, thread or process, an explicit ``parent`` (an ``AsyncSpan`` or a ``traceparent``)."""
    scope = _async_scopes.get(name)
    if scope is None:
        if callable(name):  # @sdk.async_span on a function (first use of a name: off the fast path)
            raise TypeError(_NOT_A_DECORATOR)
        caller = sys._getframe(1)
        module = target if target is not None else caller.f_globals.get("__name__", "")
        scope = _named_scope(_async_scopes, name, module, caller)
    return AsyncSpan(scope, attributes, parent)


def instrument_async(function: F | None = None, *, name: str | None = None) -> Any:
    """Decorator for coroutine functions: one async span per call."""
    if function is None:
        return lambda inner: instrument_async(inner, name=name)
    scope = _scope_of(function, name)

    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with AsyncSpan(scope):
            return await function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- user-defined event types ---------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
FIELD_TYPES = {int: "i64", float: "f64", str: "str", bool: "bool"}
"""Python types a user-defined event's field may be declared with, and their wire types (the
wire type names themselves are taken too)."""
_DEFAULTS = {"i64": 0, "f64": 0.0, "str": "", "bool": False}
CORRELATION_FIELDS = (
    ("thread_id", "u64"),
    ("thread_name", "str"),
    ("span_id", "u64"),
    ("span_kind", "u8"),
    ("trace_id", "str"),
)
"""What every user-defined event records after its fields, as a log entry does."""
RESERVED_FIELDS = frozenset(
    {
        "ticks",
        "time",
        "process_id",
        "stream_id",
        "block_id",
        "tenant",
        "date",
        "hour",
        *dict(CORRELATION_FIELDS),
    }
)
"""Field names a user-defined type may not take, in any case: the lake's columns of its table
and its partitions (``format.schema.check_user_type`` refuses them on the server)."""
_TYPE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,99}$")
"""A user-defined type's name: lower case, as its table's (``events_<name>``)."""
MAX_USER_FIELDS = 256 - 1 - len(CORRELATION_FIELDS)
"""Fields a user-defined type may declare: the server's 256 less ``ticks`` and correlation."""


@functools.cache
def _built_in_names() -> frozenset[str]:
    from blocklake.format.schema import event_types  # reads events.toml once, when first asked

    return frozenset(event_types())


FIRST_USER_TYPE_ID = 1000
user_buffers: list[TypeBuffer] = []
"""The buffer of each user-defined event type; the flusher drains them like the others."""
_user_types: dict[str, EventRecorder] = {}
_user_types_lock = threading.Lock()


class TypeBuffer(Buffer):
    """The pending events of one user-defined event type (a stream of their own)."""

    __slots__ = ("fields", "name", "type_id")

    def __init__(self, type_id: int, name: str, fields: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.type_id, self.name, self.fields = type_id, name, fields


class EventRecorder:
    """A user-defined event type, declared once with ``sdk.event_type``; ``record(...)`` (or a
    call) records one event with the fields in declaration order or by name (a field left out
    is 0, 0.0, "" or False), and, like a log entry, its thread, innermost span and trace."""

    __slots__ = ("buffer", "defaults", "names")

    def __init__(self, buffer: TypeBuffer) -> None:
        self.buffer = buffer
        self.names = tuple(name for name, _ in buffer.fields)
        self.defaults = {name: _DEFAULTS[kind] for name, kind in buffer.fields}

    @property
    def name(self) -> str:
        return self.buffer.name

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """(name, wire type) of each declared field."""
        return self.buffer.fields

    def record(self, *values: object, **named: object) -> None:
        if named:
            unknown = set(named).difference(self.defaults)
            if unknown:
                raise TypeError(f"event type {self.name!r} has no field {sorted(unknown)[0]!r}")
            values = (*values, *(named.get(n, self.defaults[n]) for n in self.names[len(values) :]))
        elif len(values) != len(self.names):
            values = (*values, *(self.defaults[n] for n in self.names[len(values) :]))
        if len(values) != len(self.names):
            raise TypeError(f"event type {self.name!r} takes {len(self.names)} fields")
        try:
            state = _local.spans
        except AttributeError:
            state = _thread_state()
        stack = state.stack
        if stack:
            event = (now(), *values, state.thread_id, stack[-1], state.trace, _context.get())
        else:
            event = (now(), *values, state.thread_id, 0, 0, _context.get())
        buffer = self.buffer
        if len(buffer) < _flush_at:
            buffer.append(event)
        else:
            _overflow(buffer, event)

    __call__ = record


def event_type(name: str, **fields: type | str) -> EventRecorder:
    """Declares an event type once: ``checkout = sdk.event_type("checkout", order_id=int,
    amount=float, currency=str, ok=bool)``, then ``checkout.record(7, 9.5, "EUR", True)``.
    Its events go to a stream of their own, whose layout carries the type; the lake writes
    them to the table ``events_<name>``, one column per field. Declaring the same name with
    the same fields again returns the same type; with other fields raises ``ValueError`` (a
    later version of the application may add fields: new columns, NULL for older rows).
    Everything the server would refuse raises ``ValueError`` here, naming the argument: a
    name not lower case or built in, a reserved field name (``RESERVED_FIELDS``), two fields
    differing only in case, more than ``MAX_USER_FIELDS`` fields."""
    if not isinstance(name, str) or not _TYPE_NAME.match(name):
        raise ValueError(
            f"event type name {name!r}: 1-100 lower-case letters, digits or _, not a digit first"
        )
    if name in _built_in_names():
        raise ValueError(f"event type name {name!r} is a built-in event type's")
    if not fields:
        raise ValueError(f"event type {name!r} needs at least one field")
    if len(fields) > MAX_USER_FIELDS:
        raise ValueError(
            f"event type {name!r}: {len(fields)} fields, at most {MAX_USER_FIELDS} (the server "
            "refuses more)"
        )
    declared = []
    seen: dict[str, str] = {}
    for field_name, kind in fields.items():
        wire = FIELD_TYPES.get(kind) if isinstance(kind, type) else kind
        if wire not in _DEFAULTS:
            raise ValueError(
                f"event type {name!r}: field {field_name!r} has type {kind!r}, expected int, "
                "float, str or bool"
            )
        if field_name.lower() in RESERVED_FIELDS or not _NAME.match(field_name):
            raise ValueError(
                f"event type {name!r}: field name {field_name!r} is reserved or not a name "
                f"(reserved: {sorted(RESERVED_FIELDS)})"
            )
        if field_name.lower() in seen:
            raise ValueError(
                f"event type {name!r}: fields {seen[field_name.lower()]!r} and {field_name!r} "
                "differ only in case (one column in SQL)"
            )
        seen[field_name.lower()] = field_name
        declared.append((field_name, wire))
    with _user_types_lock:
        existing = _user_types.get(name)
        if existing is not None:
            if existing.fields != tuple(declared):
                raise ValueError(
                    f"event type {name!r} is already declared with fields {existing.fields}"
                )
            return existing
        buffer = TypeBuffer(FIRST_USER_TYPE_ID + len(_user_types), name, tuple(declared))
        recorder = _user_types[name] = EventRecorder(buffer)
        user_buffers.append(buffer)
    return recorder
