"""blocklake's client SDK: record logs, metrics and spans for a few hundred nanoseconds each.

    from blocklake import sdk
    sdk.init("http://127.0.0.1:8787", api_key="blocklake-local")
    sdk.info("ready", target="app")
    sdk.metric("queue_depth", 12, unit="items")
    with sdk.span("load"):
        ...

Imports the standard library and lz4 only. Recording is an append to a buffer; a background
thread encodes, compresses and uploads. Memory is capped (events past the cap are dropped and
counted as the ``blocklake.sdk.dropped_events`` metric); pending events are sent at exit.
"""

from __future__ import annotations

import atexit
import getpass
import os
import socket
import sys
import time
import uuid

from blocklake.sdk import recording
from blocklake.sdk.flusher import DROPPED_METRIC, Flusher
from blocklake.sdk.logging_handler import LoggingHandler
from blocklake.sdk.recording import (
    TICK_FREQUENCY,
    AsyncSpan,
    SpanScope,
    async_span,
    debug,
    error,
    fatal,
    info,
    instrument,
    instrument_async,
    log,
    metric,
    now,
    span,
    trace,
    warn,
)
from blocklake.sdk.transport import Transport

__all__ = [
    "DROPPED_METRIC",
    "AsyncSpan",
    "LoggingHandler",
    "SpanScope",
    "async_span",
    "debug",
    "error",
    "fatal",
    "flush",
    "info",
    "init",
    "instrument",
    "instrument_async",
    "log",
    "metric",
    "process_id",
    "shutdown",
    "span",
    "trace",
    "warn",
]

_flusher: Flusher | None = None
_settings: dict = {}


def _process_document(properties: dict[str, str], exe: str | None, parent: str | None) -> dict:
    try:
        username = getpass.getuser()
    except (KeyError, OSError):
        username = ""
    start_time_ns, start_ticks = time.time_ns(), now()
    return {
        "process_id": str(uuid.uuid4()),
        "exe": exe or os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else sys.executable),
        "username": username,
        "computer": socket.gethostname(),
        "start_time_ns": start_time_ns,
        "start_ticks": start_ticks,
        "tick_frequency": TICK_FREQUENCY,
        "parent_process_id": parent,
        "properties": {
            "pid": str(os.getpid()),
            "python": sys.version.split()[0],
            **{str(k): str(v) for k, v in properties.items()},
        },
    }


def init(
    endpoint: str,
    api_key: str,
    *,
    exe: str | None = None,
    properties: dict[str, str] | None = None,
    level: str = "INFO",
    flush_interval: float = 1.0,
    flush_at: int = 8192,
    capacity: int = 65536,
    max_pending_bytes: int = 32 * 1024 * 1024,
    timeout: float = 10.0,
) -> str:
    """Starts sending to ``endpoint``; returns this process's id. Calling it again restarts.

    ``flush_at`` events in a buffer send it before ``flush_interval`` seconds pass; a buffer
    holds ``capacity`` events at most; ``max_pending_bytes`` of blocks wait for a server that is
    away. Events recorded before ``init`` are kept (up to the cap) and sent by it.
    """
    global _flusher
    if _flusher is not None:
        shutdown()
    if level.upper() not in recording.LEVEL_CODES:
        raise ValueError(f"level must be one of {list(recording.LEVEL_CODES)}, got {level!r}")
    recording.configure(
        flush_at=flush_at, capacity=capacity, max_level=recording.LEVEL_CODES[level.upper()]
    )
    _settings.update(
        endpoint=endpoint,
        api_key=api_key,
        exe=exe,
        properties=dict(properties or {}),
        flush_interval=flush_interval,
        max_pending_bytes=max_pending_bytes,
        timeout=timeout,
    )
    _flusher = _start(parent=None)
    return _flusher.process["process_id"]


def _start(parent: str | None) -> Flusher:
    flusher = Flusher(
        Transport(_settings["endpoint"], _settings["api_key"], timeout=_settings["timeout"]),
        _process_document(_settings["properties"], _settings["exe"], parent),
        interval=_settings["flush_interval"],
        max_pending_bytes=_settings["max_pending_bytes"],
    )
    flusher.start()
    return flusher


def process_id() -> str | None:
    return _flusher.process["process_id"] if _flusher else None


def flush(timeout: float = 10.0) -> bool:
    """Blocks until everything recorded so far is sent (or ``timeout``); True if it was."""
    return _flusher.flush(timeout) if _flusher else False


def shutdown(timeout: float = 10.0) -> None:
    """Sends what is pending and stops the background thread. Runs at interpreter exit."""
    global _flusher
    if _flusher is not None:
        _flusher.stop(timeout)
        _flusher = None


def _after_fork_in_child() -> None:
    """A forked child is a new process: new identity (its parent recorded), own buffers, and a
    flusher thread of its own, since threads do not survive fork."""
    global _flusher
    recording.reset_after_fork()
    if _flusher is not None:
        parent = _flusher.process["process_id"]
        _flusher = _start(parent=parent)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)
