"""The SDK keeps module-level state (buffers, the global flusher): every test here starts and
ends with it reset, and with no flusher thread left running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sdk_fake_server import FakeServer

from blocklake import sdk
from blocklake.sdk import attachments, recording
from blocklake.sdk.stats import Counters


def reset_sdk() -> None:
    sdk.shutdown(timeout=5)
    for buffer in (recording.logs, recording.measures, recording.async_events):
        del buffer[:]
        buffer.drops = recording.DropCounter()
        buffer.stream = None
        buffer.event_bytes = recording.EVENT_BYTES_GUESS
    recording.bad_values = recording.DropCounter()
    with recording._thread_buffers_lock:
        recording.thread_buffers.clear()
    recording._local = threading.local()  # this thread's span buffer was among those cleared
    recording.configure(
        flush_at=8192,
        memory_budget=recording.DEFAULT_MEMORY_BYTES,
        max_level=4,
        max_span_names=4096,
    )
    recording.set_overflow_bytes(0)
    recording.reopen()
    recording.wake_flusher.clear()
    sdk._counters = Counters()
    del attachments.events[:]
    attachments.events.drops = recording.DropCounter()
    attachments.events.stream = None
    attachments._early.clear()
    attachments._uploader = None
    attachments._counters = attachments.Counters()
    attachments._closed = False
    attachments._max_memory = recording.DEFAULT_MEMORY_BYTES


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    reset_sdk()
    yield
    reset_sdk()
    names = ("blocklake-flusher", "blocklake-uploader", "blocklake-attachments")
    alive = [t for t in threading.enumerate() if t.name in names and t.is_alive()]
    assert not alive, "an SDK thread outlived its test"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    sdk.shutdown(timeout=5)  # while the server still answers: what is pending goes at once
    fake.stop()
