"""blocklake's client SDK: record logs, metrics and spans for a few hundred nanoseconds each.

    from blocklake import sdk
    sdk.init("http://127.0.0.1:8787", api_key="blocklake-local")
    sdk.info("ready", target="app")
    sdk.metric("queue_depth", 12, unit="items", attributes={"queue": "orders"})
    with sdk.trace_context(headers.get("traceparent")), sdk.span("load"):
        sdk.set_span_attributes({"route": "/cart"})
    checkout = sdk.event_type("checkout", order_id=int, amount=float, currency=str, ok=bool)
    checkout.record(7, 9.5, "EUR", True)

Imports the standard library and lz4 only. Recording is an append to a buffer; a background
thread encodes and compresses, another uploads. Memory is capped in bytes (events past the cap
are dropped and counted, by reason in ``stats()`` and as the ``blocklake.sdk.dropped_events``
metric); pending events are sent at exit, and by ``multiprocessing`` children when they end.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import json
import logging
import multiprocessing.util
import os
import signal
import socket
import sys
import threading
import time
import uuid

from blocklake.format.encode import Attributes
from blocklake.sdk import attachments, recording, registration
from blocklake.sdk.attachments import attach
from blocklake.sdk.flusher import DROPPED_METRIC, Flusher
from blocklake.sdk.logging_handler import LoggingHandler
from blocklake.sdk.recording import (
    TICK_FREQUENCY,
    AsyncSpan,
    EventRecorder,
    SpanScope,
    TraceContext,
    async_span,
    current_span,
    current_traceparent,
    debug,
    error,
    event_type,
    fatal,
    info,
    instrument,
    instrument_async,
    log,
    metric,
    now,
    set_span_attributes,
    span,
    trace,
    trace_context,
    warn,
)
from blocklake.sdk.stats import DROP_REASONS, Counters
from blocklake.sdk.transport import Transport
from blocklake.sdk.uploader import Uploader

_log = logging.getLogger("blocklake.sdk")

__all__ = [
    "DROPPED_METRIC",
    "DROP_REASONS",
    "AsyncSpan",
    "Attributes",
    "EventRecorder",
    "LoggingHandler",
    "SpanScope",
    "TraceContext",
    "async_span",
    "attach",
    "attributes",
    "current_span",
    "current_traceparent",
    "debug",
    "error",
    "event_type",
    "fatal",
    "flush",
    "info",
    "init",
    "instrument",
    "instrument_async",
    "log",
    "metric",
    "process_id",
    "set_span_attributes",
    "shutdown",
    "span",
    "stats",
    "trace",
    "trace_context",
    "warn",
]


def attributes(values: dict | None = None, /, **named: object) -> Attributes:
    """A set of attributes frozen once (``sdk.attributes(route="/cart", ok=True)``): recording
    it with a metric or span costs a reference, and encoding it nothing; values str, int,
    float or bool (others as their ``str``)."""
    return Attributes.of({**(values or {}), **named})


_flusher: Flusher | None = None
_settings: dict = {}
_counters = Counters()
_stopping = False
"""True while ``shutdown`` sends what is left."""
CHILD_ENV = "BLOCKLAKE_SDK_CHILD"
"""Set by ``init`` for child processes: what a spawn or forkserver child of ``multiprocessing``
needs to start sending on its own (endpoint, API key, options, parent process id)."""


def _process_document(properties: dict[str, str], exe: str | None, parent: str | None) -> dict:
    try:
        username = getpass.getuser()
    except (KeyError, OSError):
        username = ""
    start_time_ns, start_ticks = time.time_ns(), now()
    text = registration.text
    process_id = uuid.uuid4()
    recording.set_trace_prefix(process_id)
    return {
        "process_id": str(process_id),
        "exe": text(
            exe or os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else sys.executable)
        ),
        "username": text(username),
        "computer": text(socket.gethostname()),
        "start_time_ns": start_time_ns,
        "start_ticks": start_ticks,
        "tick_frequency": TICK_FREQUENCY,
        "parent_process_id": parent,
        "properties": {
            "pid": str(os.getpid()),
            "python": sys.version.split()[0],
            **properties,  # already within the server's limits, the two above included
        },
    }


def init(
    endpoint: str,
    api_key: str,
    *,
    exe: str | os.PathLike | None = None,
    properties: dict[str, str] | None = None,
    level: str | int = "INFO",
    flush_interval: float = 1.0,
    flush_at: int = 8192,
    max_memory: int = recording.DEFAULT_MEMORY_BYTES,
    retry_for: float = 300.0,
    timeout: float = 10.0,
    max_span_names: int = 4096,
) -> str:
    """Starts sending to ``endpoint``; returns this process's id. Calling it again restarts.

    ``flush_at`` events in a buffer send it before ``flush_interval`` seconds pass.
    ``max_memory`` (bytes, default 64 MiB) caps what waits to be sent: events in the buffers
    (estimated) and encoded blocks; past it new events are dropped and counted. A block the
    server cannot take yet is retried for ``retry_for`` seconds at most; ``timeout`` bounds one
    request. ``max_span_names`` names keep a scope each (more are still recorded). Events
    recorded before ``init`` are kept (within the budget) and sent by it. Child processes of
    ``multiprocessing`` (fork, spawn, forkserver) send their events too: ``init`` leaves its
    settings, API key included, in the ``BLOCKLAKE_SDK_CHILD`` environment variable for them.

    ``exe`` (default: the script's absolute path) and ``properties`` (a mapping of text) are
    registered with the process; ``level`` is the most verbose log level recorded: a name
    (``"INFO"``, ``"warning"``), 1-6, or a ``logging`` level. ``init`` never raises for a value:
    text is coerced with ``str`` (bytes and paths as file names), properties that are not a
    mapping become pairs or one ``properties`` entry, and everything is cut to the server's
    limits (256 properties, 4096-byte values, 256-byte keys) with a visible marker; an option
    that is not a positive number takes its default. Each such repair is logged as a warning.
    """
    global _flusher, _counters
    if _flusher is not None:
        shutdown()
    _settings.clear()
    _settings.update(
        endpoint=registration.text(endpoint),
        api_key=registration.text(api_key),
        exe=registration.text(exe) if exe is not None else None,
        properties=_properties(properties),
        level=_level_name(level),
        flush_interval=_positive("flush_interval", flush_interval, 1.0),
        flush_at=int(_positive("flush_at", flush_at, 8192)),
        max_memory=int(_positive("max_memory", max_memory, recording.DEFAULT_MEMORY_BYTES)),
        retry_for=_positive("retry_for", retry_for, 300.0, zero=True),
        timeout=_positive("timeout", timeout, 10.0),
        max_span_names=int(_positive("max_span_names", max_span_names, 4096)),
    )
    _counters = Counters()  # a new process: its own counts
    _flusher = _start(parent=None)
    os.environ[CHILD_ENV] = json.dumps(
        {**_settings, "parent": _flusher.process["process_id"], "pid": os.getpid()}
    )
    return _flusher.process["process_id"]


def _properties(properties: object) -> dict[str, str]:
    """Within the server's limits, with room for the SDK's own two (``pid``, ``python``)."""
    result = registration.properties(properties, reserved=2)
    plain = isinstance(properties, dict | type(None)) and all(
        type(k) is str and type(v) is str and result.get(k) == v
        for k, v in (properties or {}).items()
    )
    if not plain:
        _log.warning(
            "blocklake: init's properties were converted to at most %d text entries "
            "within the server's limits",
            registration.MAX_ENTRIES,
        )
    return result


def _positive(name: str, value: object, default: float, *, zero: bool = False) -> float:
    """A number option as a positive float (or 0 if ``zero``); anything else is its default,
    with a warning."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not (number >= 0 if zero else number > 0) or number == float("inf"):
        _log.warning("blocklake: init's %s %r is not a positive number: %s", name, value, default)
        return default
    return number


def _level_name(level: object) -> str:
    """``level`` as a name: a name (any case), an SDK level number (1-6) or one of the
    ``logging`` module's (10-50); anything else is INFO, with a warning."""
    name = recording.level_name(level)
    if name is None:
        _log.warning("blocklake: init's level %r is not a level: INFO", level)
        return "INFO"
    return name


def _start(parent: str | None) -> Flusher:
    recording.reopen()
    recording.configure(
        flush_at=_settings["flush_at"],
        memory_budget=_settings["max_memory"],
        max_level=recording.LEVEL_CODES[_settings["level"]],
        max_span_names=_settings["max_span_names"],
    )
    transport = Transport(_settings["endpoint"], _settings["api_key"], timeout=_settings["timeout"])
    uploader = Uploader(
        transport,
        _process_document(_settings["properties"], _settings["exe"], parent),
        _counters,
        retry_for=_settings["retry_for"],
    )
    attachments.start(
        transport,
        retry_for=_settings["retry_for"],
        max_memory=_settings["max_memory"],
        blocks_bytes=lambda: uploader.queued_bytes,
    )
    flusher = Flusher(
        uploader,
        _counters,
        interval=_settings["flush_interval"],
        max_memory=_settings["max_memory"],
    )
    flusher.start()
    return flusher


def process_id() -> str | None:
    return _flusher.process["process_id"] if _flusher else None


def flush(timeout: float = 10.0) -> bool:
    """Blocks until everything recorded so far is acknowledged by the server (or ``timeout``
    seconds pass). True if it was, and no event and no attachment was dropped since the
    previous ``flush()``. Attachments made before the call are uploaded (or given up) first,
    their events sent."""
    if _flusher is None:
        return False
    deadline = time.monotonic() + timeout
    settled = attachments.wait_settled(deadline)
    flushed = _flusher.flush(max(0.0, deadline - time.monotonic()))
    return flushed and settled and attachments.new_drops() == 0


def stats() -> dict:
    """This process's counters, in events unless named otherwise::

        {"recorded", "acknowledged", "pending",
         "dropped": {"buffer_full", "bad_value", "refused", "queue_full",
                     "retries_exhausted", "abandoned_at_exit", "after_shutdown"},
         "coerced", "truncated", "blocks_sent", "bytes_sent", "retries",
         "registrations_repeated", "own_metrics",
         "attachments": {"attached", "uploaded", "pending", "dropped": {...},
                         "bytes_uploaded", "retries"}}

    ``recorded == acknowledged + sum(dropped.values()) + pending`` once the flusher has
    counted (after ``flush()``; mid-round, events being encoded are in neither side).
    ``recorded`` includes the SDK's own ``own_metrics`` events; ``coerced`` and ``truncated``
    events were sent, repaired. Counts of a forked child start at 0. ``attachments`` counts
    attachments (``sdk.attach``): ``attached == uploaded + sum(dropped) + pending``; each one
    uploaded is then one ``attachment`` event in the counts above.
    """
    flusher = _flusher
    buffered = flusher.buffered() if flusher else sum(map(len, _all_buffers()))
    in_flight = flusher.uploader.in_flight() if flusher else 0
    if flusher is None and recording._closed:  # nothing will send what the buffers hold
        counts = _counters.snapshot(0, 0, recording.after_shutdown.pending + buffered)
    else:
        counts = _counters.snapshot(buffered, in_flight)
    return {**counts, "attachments": attachments.stats()}


def _all_buffers() -> list[recording.Buffer]:
    return [
        recording.logs,
        recording.measures,
        recording.async_events,
        attachments.events,
        *recording.user_buffers,
        *recording.thread_buffers,
    ]


def shutdown(timeout: float = 10.0) -> int:
    """Sends what is pending and stops the background threads; returns the number of events
    and attachments it had to abandon (not acknowledged, not uploaded within ``timeout``
    seconds), also logged and counted as ``dropped["abandoned_at_exit"]`` (of ``stats()`` and
    of ``stats()["attachments"]``). Runs at interpreter exit. Events recorded after it
    (until ``init`` again) are dropped, counted as ``dropped["after_shutdown"]``, with one
    warning."""
    global _flusher, _stopping
    if _flusher is None:
        return 0
    flusher, _flusher = _flusher, None
    deadline = time.monotonic() + timeout
    recording.close()  # what is recorded from now on is counted as dropped after_shutdown
    _stopping = True  # at once: a second SIGTERM must find shutdown under way
    try:
        # Attachments first, within half the time: their events must reach the flusher's last
        # round (they go to their buffer past the record path, which close() shuts).
        abandoned = attachments.stop(deadline - timeout / 2)
        abandoned += flusher.stop(max(0.0, deadline - time.monotonic()))
    finally:
        _stopping = False
    if abandoned:
        _log.warning("blocklake: shutdown abandoned %d unsent events (%.1f s)", abandoned, timeout)
    return abandoned


def _after_fork_in_child() -> None:
    """A forked child is a new process: new identity (its parent recorded), own buffers and
    counters, and threads of its own, since threads do not survive fork."""
    global _flusher, _counters
    recording.reset_after_fork()
    _counters = Counters()
    if _flusher is not None:
        parent = _flusher.process["process_id"]
        _flusher = _start(parent=parent)


def _spawned() -> bool:
    """True in a child that ``multiprocessing`` started with spawn (a fresh interpreter)."""
    return "--multiprocessing-fork" in getattr(sys, "orig_argv", ())


def _init_child() -> None:
    """A spawn or forkserver child: ``init`` with the settings its parent left in the
    environment, if the parent called ``init``."""
    global _flusher
    inherited = os.environ.get(CHILD_ENV)
    if not inherited or _flusher is not None:
        return
    settings = json.loads(inherited)
    parent = settings.pop("parent")
    settings.pop("pid")
    _settings.clear()
    _settings.update(settings)
    _flusher = _start(parent=parent)
    _send_at_child_exit()


def _send_at_child_exit() -> None:
    """``multiprocessing`` ends its children with ``os._exit``, which skips ``atexit``, but it
    runs its own finalizers first; ``Pool.terminate()`` (and so ``with Pool() as pool:``) ends
    workers with SIGTERM: send what is pending first, then die of the signal as before (only
    where the program does not handle SIGTERM itself)."""
    multiprocessing.util.Finalize(None, shutdown, exitpriority=100)
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        if _stopping:  # already sending what is left (the worker was ending): let it end
            return
        # On a thread of its own, waited for a bounded time: the signal may have interrupted
        # this thread inside a lock that sending needs (the SDK's, logging's), and waiting for
        # it here would never end (Pool.terminate() then waits for this worker forever).
        sender = threading.Thread(target=shutdown, kwargs={"timeout": 4.0}, daemon=True)
        sender.start()
        sender.join(5.0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    with contextlib.suppress(ValueError):  # not the main thread: no handler, finalizer only
        signal.signal(signal.SIGTERM, on_sigterm)


def _in_forked_multiprocessing_child() -> None:
    """Runs in a fork or forkserver child of ``multiprocessing`` before its target, once the
    finalizers of its parent are cleared. A forkserver child (forked from a server that never
    called ``init``) starts from its parent's settings."""
    if _flusher is None:
        _init_child()
    else:
        _send_at_child_exit()


class _ForkHook:
    """``multiprocessing.util.register_after_fork`` keeps a weak reference to its object."""


_fork_hook = _ForkHook()
multiprocessing.util.register_after_fork(
    _fork_hook, lambda _hook: _in_forked_multiprocessing_child()
)
os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)
if _spawned():  # spawn runs no after-fork hook: start while its main module is imported
    _init_child()
