"""Report B of issue 12 (attachments), the SDK's findings as fast tests: a file that changes
during its upload is sent again under a new id, ``flush()`` is False and ``shutdown()`` counts
when attachments are lost, the memory budget holds under concurrent calls, a value that is
neither bytes nor a path is a counted drop, a bad content type falls back with a warning."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocklake import sdk
from blocklake.config import Settings
from blocklake.sdk import attachments
from blocklake.server.http import LocalServer
from tests.helpers import KEYS
from tests.sdk.test_attachments import ACME, data_objects, stored_rows


@pytest.fixture
def small_lake(tmp_path: Path) -> Iterator[LocalServer]:
    settings = Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS), max_attachment_bytes=4096)
    with LocalServer(settings, port=0) as server:
        yield server


def closed_port() -> str:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


def balanced(counts: dict) -> bool:
    return (
        counts["attached"]
        == counts["uploaded"] + sum(counts["dropped"].values()) + counts["pending"]
    )


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_a_file_changed_during_its_upload_is_sent_again_under_a_new_id(
    small_lake: LocalServer, tmp_path: Path, monkeypatch, change: str
) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"a" * 3000)
    real_put = attachments.put
    calls = []

    def changes_the_file(url, headers, chunks, timeout):
        calls.append(url)
        if len(calls) == 1:
            path.write_bytes(b"b" * (1000 if change == "truncate" else 3000))
        real_put(url, headers, chunks, timeout)

    monkeypatch.setattr(attachments, "put", changes_the_file)
    sdk.init(small_lake.url, ACME, retry_for=30)
    first = sdk.attach("log.txt", path)
    assert sdk.flush(timeout=30)
    counts = sdk.stats()["attachments"]
    assert (counts["uploaded"], sum(counts["dropped"].values())) == (1, 0)
    (row,) = stored_rows(small_lake)
    assert row["attachment_id"] != first
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dict(row["attributes"])["blocklake.attach_id"] == first
    stored = {p.stem: p.read_bytes() for p in data_objects(small_lake)}
    assert stored == {row["attachment_id"]: path.read_bytes()}


def test_flush_is_false_when_an_attachment_was_dropped(
    small_lake: LocalServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5000))  # over the server's 4096 bytes: 413, refused
    sdk.init(small_lake.url, ACME)
    assert sdk.attach("big", big) is not None
    assert sdk.flush(timeout=30) is False
    assert sdk.stats()["attachments"]["dropped"]["refused"] == 1
    assert sdk.flush(timeout=30) is True  # nothing dropped since
    assert sdk.attach("bad", 12345) is None
    assert sdk.flush(timeout=30) is False


def test_flush_is_false_when_retries_are_exhausted() -> None:
    sdk.init(closed_port(), ACME, retry_for=0.3)
    sdk.attach("dump", b"x" * 100)
    assert sdk.flush(timeout=5) is False
    assert sdk.stats()["attachments"]["dropped"]["retries_exhausted"] == 1


def test_shutdown_counts_the_attachments_it_abandoned() -> None:
    sdk.init(closed_port(), ACME, retry_for=600)
    sdk.attach("dump", b"x" * 100)
    abandoned = sdk.shutdown(timeout=0.5)
    counts = sdk.stats()
    assert counts["attachments"]["dropped"]["abandoned_at_exit"] == 1
    assert abandoned == 1 + counts["dropped"]["abandoned_at_exit"]


def test_the_memory_budget_holds_under_concurrent_attach_calls(monkeypatch) -> None:
    sdk.init(closed_port(), ACME, retry_for=600, max_memory=10 * 1024 * 1024)
    held = []
    real = attachments.held_bytes

    def slow_held_bytes() -> int:  # widen the window between the check and the enqueueing
        value = real()
        threading.Event().wait(0.01)
        return value

    monkeypatch.setattr(attachments, "held_bytes", slow_held_bytes)
    start = threading.Barrier(8)

    def attach() -> None:
        start.wait()
        sdk.attach("chunk", bytes(4 * 1024 * 1024))
        held.append(real())

    threads = [threading.Thread(target=attach) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert real() <= 10 * 1024 * 1024
    counts = sdk.stats()["attachments"]
    assert counts["dropped"]["memory_full"] >= 6
    assert balanced(counts)


@pytest.mark.parametrize(
    "data",
    [12345, -1, 2**70, True, [1, 2, 3], 3.5, {"a": 1}, object()],
    ids=lambda value: type(value).__name__ if type(value) is object else repr(value),
)
def test_a_value_neither_bytes_nor_a_path_is_a_counted_drop(data: object, caplog) -> None:
    assert sdk.attach("x", data) is None
    counts = sdk.stats()["attachments"]
    assert counts["dropped"]["bad_value"] == 1
    assert counts["attached"] == 1 and balanced(counts)
    assert "not bytes" in caplog.text


def test_a_content_type_that_could_split_a_header_falls_back(
    small_lake: LocalServer, caplog
) -> None:
    sdk.init(small_lake.url, ACME)
    assert sdk.attach("x.bin", b"abc", "text/plain\r\n\r\n; <script>") is not None
    assert sdk.flush(timeout=30)
    (row,) = stored_rows(small_lake)
    assert row["content_type"] == "application/octet-stream"
    assert "not a media type" in caplog.text
    assert "Traceback" not in caplog.text
