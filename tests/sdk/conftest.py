"""The SDK keeps module-level state (buffers, the global flusher): every test here starts and
ends with it reset, and with no flusher thread left running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sdk_fake_server import FakeServer

from blocklake import sdk
from blocklake.sdk import recording


def reset_sdk() -> None:
    sdk.shutdown(timeout=5)
    for buffer in (recording.logs, recording.measures, recording.async_events):
        del buffer[:]
        buffer.drops = recording.DropCounter()
        buffer.stream = None
    with recording._thread_buffers_lock:
        recording.thread_buffers.clear()
    recording._local = threading.local()  # this thread's span buffer was among those cleared
    recording.configure(flush_at=8192, capacity=65536, max_level=4)
    recording.wake_flusher.clear()


@pytest.fixture(autouse=True)
def clean_sdk() -> Iterator[None]:
    reset_sdk()
    yield
    reset_sdk()
    alive = [t for t in threading.enumerate() if t.name == "blocklake-flusher" and t.is_alive()]
    assert not alive, "a flusher thread outlived its test"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer().start()
    yield fake
    fake.stop()
