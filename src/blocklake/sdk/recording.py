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
import logging
import sys
import threading
import time
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

    __slots__ = ("drops", "event_bytes", "owner", "stream")

    def __init__(self, owner: threading.Thread | None = None) -> None:
        super().__init__()
        self.drops = DropCounter()
        self.event_bytes = EVENT_BYTES_GUESS
        """Estimated bytes one of its events takes in memory, measured by the flusher."""
        self.owner = owner
        """The thread whose spans this buffer holds (thread streams only)."""
        self.stream: object = None
        """The flusher's state for the stream these events go to, set by the flusher."""

    @property
    def dropped(self) -> int:
        """Events dropped since the flusher last counted them."""
        return self.drops.pending


logs = Buffer()
"""(ticks, level, target, message, properties or None)"""
measures = Buffer()
"""(ticks, name, unit, value)"""
async_events = Buffer()
"""(scope id, ticks, span id, parent id) for a begin; (-scope id, ticks, span id, 0) for an end"""

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

    __slots__ = ("buffer", "depth")

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.depth = 1

    def __len__(self) -> int:
        return sys.maxsize

    def append(self, event: tuple) -> None:
        """A span end: the end of the dropped subtree's root puts the real buffer back."""
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
    for buffer in (logs, measures, async_events):
        del buffer[:]
        buffer.drops = DropCounter()
        buffer.stream = None
    bad_values = DropCounter()
    thread_buffers.clear()
    _local = threading.local()
    _thread_buffers_lock = threading.Lock()
    wake_flusher = threading.Event()
    set_overflow_bytes(0)


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
    if len(logs) < _flush_at:
        logs.append((now(), level, target, message, properties))
    else:
        _overflow(logs, (now(), level, target, message, properties))


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
    if len(logs) < _flush_at:
        logs.append((now(), 1, target, message, properties))
    else:
        _overflow(logs, (now(), 1, target, message, properties))


def error(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 2:
        if len(logs) < _flush_at:
            logs.append((now(), 2, target, message, properties))
        else:
            _overflow(logs, (now(), 2, target, message, properties))


def warn(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 3:
        if len(logs) < _flush_at:
            logs.append((now(), 3, target, message, properties))
        else:
            _overflow(logs, (now(), 3, target, message, properties))


def info(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 4:
        if len(logs) < _flush_at:
            logs.append((now(), 4, target, message, properties))
        else:
            _overflow(logs, (now(), 4, target, message, properties))


def debug(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 5:
        if len(logs) < _flush_at:
            logs.append((now(), 5, target, message, properties))
        else:
            _overflow(logs, (now(), 5, target, message, properties))


def trace(message: str, target: str = "", properties: dict | None = None) -> None:
    if _max_level >= 6:
        if len(logs) < _flush_at:
            logs.append((now(), 6, target, message, properties))
        else:
            _overflow(logs, (now(), 6, target, message, properties))


# --- metrics ----------------------------------------------------------------------------------


def metric(name: str, value: float, unit: str = "") -> None:
    if len(measures) < _flush_at:
        measures.append((now(), name, unit, value))
    else:
        _overflow(measures, (now(), name, unit, value))


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
        if len(buffer) < _flush_at:
            buffer.append((self.id, now()))
        else:
            _span_begin_overflow(buffer, (self.id, now()))
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            buffer = _local.spans
        except AttributeError:  # a begin recorded before a fork, in a thread that is gone
            return
        buffer.append((self.end_id, now()))

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
    buffer = Buffer(threading.current_thread())
    _local.spans = buffer
    with _thread_buffers_lock:
        thread_buffers.append(buffer)
    return buffer


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
        if len(buffer) < _flush_at:
            buffer.append((begin, now()))
        else:
            buffer = _span_begin_overflow(buffer, (begin, now()))
        try:
            return function(*args, **kwargs)
        finally:
            buffer.append((end, now()))

    return wrapper  # type: ignore[return-value]


def instrument(function: F | None = None, *, name: str | None = None) -> Any:
    """Decorator: one thread span per call, named after the function unless ``name`` is given."""
    if function is None:
        return lambda inner: _instrument(inner, _scope_of(inner, name))
    return _instrument(function, _scope_of(function, name))


# --- async spans ------------------------------------------------------------------------------

_async_scopes: dict[str, SpanScope] = {}
_next_async_id = itertools.count(1).__next__
"""Async span ids, unique in the process (``next`` on a count is atomic under the GIL)."""
_current_async: contextvars.ContextVar[int] = contextvars.ContextVar(
    "blocklake_async_span", default=0
)


class AsyncSpan:
    """One async span: it may end on another thread or task than it began. Its parent is the
    enclosing async span of the same context, which asyncio tasks inherit."""

    __slots__ = ("scope", "span_id", "stored", "token")

    def __init__(self, scope: SpanScope) -> None:
        self.scope = scope

    def __enter__(self) -> AsyncSpan:
        parent = _current_async.get()
        self.span_id = _next_async_id()
        self.token = _current_async.set(self.span_id)
        event = (self.scope.id, now(), self.span_id, parent)
        if len(async_events) < _flush_at:
            async_events.append(event)
            self.stored = True
        else:
            self.stored = _overflow(async_events, event)
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        # The end of a kept begin is always kept: ends are bounded by the begins kept.
        if self.stored:
            async_events.append((self.scope.end_id, now(), self.span_id, 0))
        else:  # the end of a dropped begin is lost with it: an event, counted as its begin was
            forget_scope(self.scope.id)
            _count_drop(async_events)
        _current_async.reset(self.token)

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise TypeError(_NOT_A_DECORATOR)

    async def __aenter__(self) -> AsyncSpan:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)


_NOT_A_DECORATOR = (
    "sdk.async_span is a context manager ('async with sdk.async_span(\"name\"):'), not a "
    "decorator: decorate a coroutine function with @sdk.instrument_async (or "
    '@sdk.instrument_async(name="name"))'
)


def async_span(name: str, target: str | None = None) -> AsyncSpan:
    """``async with async_span("name"):`` (or ``with``): a new span each time it is entered."""
    scope = _async_scopes.get(name)
    if scope is None:
        if callable(name):  # @sdk.async_span on a function (first use of a name: off the fast path)
            raise TypeError(_NOT_A_DECORATOR)
        caller = sys._getframe(1)
        module = target if target is not None else caller.f_globals.get("__name__", "")
        scope = _named_scope(_async_scopes, name, module, caller)
    return AsyncSpan(scope)


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
