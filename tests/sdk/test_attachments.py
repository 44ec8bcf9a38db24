"""Issue 12 item 6: ``sdk.attach`` uploads a large binary through the local server, an
``attachment`` event in a block references it, SQL finds it and the API downloads it with the
tenant's key. Stored objects and Parquet rows are read from disk, not only through the API."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from blocklake import client, sdk
from blocklake.cli import app
from blocklake.config import Settings
from blocklake.sdk import attachments
from blocklake.sdk.transport import DeliveryError
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

ACME, GLOBEX = "key-acme", "key-globex"


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[LocalServer]:
    settings = Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS))
    with LocalServer(settings, port=0) as server:
        yield server


def stored_rows(server: LocalServer, tenant: str = "acme") -> list[dict]:
    """The ``attachments`` rows as the ETL wrote them, from the Parquet files themselves."""
    server.lake.wait_converted()
    root = server.lake.blobs.root / "tables" / "attachments" / f"tenant={tenant}"
    rows = []
    for path in sorted(root.rglob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda row: row["name"])


def data_objects(server: LocalServer, tenant: str = "acme") -> list[Path]:
    folder = server.lake.blobs.root / "attachments" / f"tenant={tenant}"
    return sorted(folder.glob("*.data")) if folder.is_dir() else []


def test_attach_bytes_and_a_file_then_query_and_download_them(
    lake: LocalServer, tmp_path: Path
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks and a ragged end
    dump = b"MDMP" + os.urandom(100_000)
    sdk.init(lake.url, ACME)
    dump_id = sdk.attach("crash.dmp", dump, "application/x-dmp", {"build": "1.4.2", "pid": 7})
    video_id = sdk.attach(None, video)  # name and type from the path
    assert dump_id and video_id and dump_id != video_id
    assert sdk.flush(timeout=30)
    counts = sdk.stats()["attachments"]
    assert counts == {
        "attached": 2,
        "uploaded": 2,
        "pending": 0,
        "dropped": dict.fromkeys(attachments.DROP_REASONS, 0),
        "bytes_uploaded": len(dump) + video.stat().st_size,
        "retries": 0,
    }

    # the bytes, stored untouched under the tenant's prefix
    objects = {path.stem: path.read_bytes() for path in data_objects(lake)}
    assert objects == {dump_id: dump, video_id: video.read_bytes()}

    # the events, converted to Parquet: one row each, every column as recorded
    rows = stored_rows(lake)
    assert [
        {k: v for k, v in row.items() if k not in ("process_id", "stream_id", "block_id", "time")}
        for row in rows
    ] == [
        {
            "attachment_id": video_id,
            "name": "clip.mp4",
            "content_type": "video/mp4",
            "size": video.stat().st_size,
            "sha256": hashlib.sha256(video.read_bytes()).hexdigest(),
            "attributes": [],
            "link": f"/v1/attachments/{video_id}",
        },
        {
            "attachment_id": dump_id,
            "name": "crash.dmp",
            "content_type": "application/x-dmp",
            "size": len(dump),
            "sha256": hashlib.sha256(dump).hexdigest(),
            "attributes": [("build", "1.4.2"), ("pid", "7")],
            "link": f"/v1/attachments/{dump_id}",
        },
    ]
    assert {row["process_id"] for row in rows} == {sdk.process_id()}

    # SQL sees the same rows
    acme = client.connect(lake.url, ACME)
    table = acme.query("SELECT name, size, link FROM attachments ORDER BY name")
    assert table.to_pylist() == [
        {"name": "clip.mp4", "size": video.stat().st_size, "link": f"/v1/attachments/{video_id}"},
        {"name": "crash.dmp", "size": len(dump), "link": f"/v1/attachments/{dump_id}"},
    ]

    # downloads: the client (into a directory: the attachment's own name) and the CLI
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    got = acme.download_attachment(video_id, downloads)
    assert got.path == downloads / "clip.mp4"
    assert got.path.read_bytes() == video.read_bytes()
    assert (got.size, got.content_type) == (video.stat().st_size, "video/mp4")
    assert [p.name for p in downloads.iterdir()] == ["clip.mp4"]  # no partial file left
    target = tmp_path / "dump.bin"
    result = CliRunner().invoke(
        app,
        [
            "attachments",
            "get",
            rows[1]["link"],
            "-o",
            str(target),
            "--endpoint",
            lake.url,
            "--api-key",
            ACME,
        ],
    )
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == dump

    # another tenant: no rows, and the ids are not found (404, not 403)
    globex = client.connect(lake.url, GLOBEX)
    assert globex.query("SELECT count(*) AS n FROM attachments").to_pylist() == [{"n": 0}]
    with pytest.raises(client.QueryError) as refused:
        globex.download_attachment(dump_id, tmp_path)
    assert (refused.value.status, refused.value.code) == (404, "unknown_attachment")
    result = CliRunner().invoke(
        app, ["attachments", "get", dump_id, "--endpoint", lake.url, "--api-key", GLOBEX]
    )
    assert result.exit_code == 1
    assert "404 unknown_attachment" in result.output


def test_a_retried_upload_is_stored_once(lake: LocalServer, monkeypatch) -> None:
    """The first PUT stores the bytes but its answer is lost; the retry declares again, is
    answered ``uploaded`` and sends nothing: one object, one event."""
    real_put = attachments.put
    puts = []

    def answer_lost(*args, **kwargs):
        puts.append(args[0])
        real_put(*args, **kwargs)
        if len(puts) == 1:
            raise DeliveryError("connection reset", kind="transient")

    monkeypatch.setattr(attachments, "put", answer_lost)
    sdk.init(lake.url, ACME)
    attachment_id = sdk.attach("core", b"\x7fELF" * 50_000)
    assert sdk.flush(timeout=30)
    counts = sdk.stats()["attachments"]
    assert (counts["uploaded"], counts["retries"], sum(counts["dropped"].values())) == (1, 1, 0)
    assert len(puts) == 1
    assert [path.stem for path in data_objects(lake)] == [attachment_id]
    assert [row["attachment_id"] for row in stored_rows(lake)] == [attachment_id]


def test_a_failed_upload_is_retried_and_stored_once(lake: LocalServer, monkeypatch) -> None:
    real_put = attachments.put
    calls = []

    def fails_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise DeliveryError("PUT: 503", kind="transient", status=503)
        real_put(*args, **kwargs)

    monkeypatch.setattr(attachments, "put", fails_twice)
    sdk.init(lake.url, ACME)
    attachment_id = sdk.attach("screen.png", b"\x89PNG" + bytes(70_000))
    assert sdk.flush(timeout=30)
    counts = sdk.stats()["attachments"]
    assert (counts["uploaded"], counts["retries"]) == (1, 2)
    assert [path.stem for path in data_objects(lake)] == [attachment_id]
    rows = stored_rows(lake)
    assert [(row["attachment_id"], row["content_type"]) for row in rows] == [
        (attachment_id, "image/png")
    ]


def test_what_cannot_be_sent_is_dropped_counted_and_never_recorded(tmp_path: Path, caplog) -> None:
    settings = Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS), max_attachment_bytes=4096)
    big_file = tmp_path / "big.bin"
    big_file.write_bytes(os.urandom(3 * 1024 * 1024))
    with LocalServer(settings, port=0) as server:
        sdk.init(server.url, ACME, max_memory=2 * 1024 * 1024)
        assert sdk.attach("missing", tmp_path / "no-such-file") is None
        assert sdk.attach("huge", os.urandom(3 * 1024 * 1024)) is None  # over max_memory
        assert sdk.attach("too large for the server", big_file) is not None  # files count 0
        small = sdk.attach("small", b"fits")
        sdk.flush(timeout=30)
        counts = sdk.stats()["attachments"]
        assert counts["dropped"] == {
            **dict.fromkeys(attachments.DROP_REASONS, 0),
            "unreadable": 1,
            "memory_full": 1,
            "refused": 1,  # 413 attachment_too_large
        }
        assert (counts["attached"], counts["uploaded"], counts["pending"]) == (4, 1, 0)
        assert counts["attached"] == counts["uploaded"] + sum(counts["dropped"].values())
        assert [row["attachment_id"] for row in stored_rows(server)] == [small]
        assert [path.stem for path in data_objects(server)] == [small]
        assert "attachment_too_large" in caplog.text
        sdk.shutdown()
        assert sdk.attach("late", b"x") is None
        assert sdk.stats()["attachments"]["dropped"]["after_shutdown"] == 1


def test_attach_never_waits_on_the_network() -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sdk.init(f"http://127.0.0.1:{port}", ACME, retry_for=0.5)
    started = time.perf_counter()
    attachment_id = sdk.attach("dump", b"x" * 1_000_000)
    assert time.perf_counter() - started < 0.05
    assert attachment_id is not None
    assert sdk.stats()["attachments"]["pending"] == 1
    sdk.flush(timeout=5)
    counts = sdk.stats()["attachments"]
    assert counts["dropped"]["retries_exhausted"] == 1 and counts["pending"] == 0
    assert counts["retries"] >= 1


def test_attachments_made_before_init_are_sent_by_it(lake: LocalServer) -> None:
    early = sdk.attach("early.txt", b"before init")
    assert sdk.stats()["attachments"]["pending"] == 1
    sdk.init(lake.url, ACME)
    assert sdk.flush(timeout=30)
    assert [(row["attachment_id"], row["content_type"]) for row in stored_rows(lake)] == [
        (early, "text/plain")
    ]


def test_a_file_is_streamed_not_held_in_memory(lake: LocalServer, tmp_path: Path) -> None:
    """Hashing and sending a 64 MiB file (SDK and server in this process) allocate a few
    chunks at a time, never the file."""
    video = tmp_path / "long.mp4"
    with video.open("wb") as file:
        for _ in range(64):
            file.write(os.urandom(1024 * 1024))
    sdk.init(lake.url, ACME)
    tracemalloc.start()
    try:
        attachment_id = sdk.attach("long.mp4", video)
        assert sdk.flush(timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while sending a 64 MiB file"
    (stored,) = data_objects(lake)
    assert stored.stem == attachment_id and stored.stat().st_size == 64 * 1024 * 1024
    declaration = json.loads(stored.with_suffix(".json").read_text())
    assert declaration["sha256"] == hashlib.sha256(video.read_bytes()).hexdigest()


def test_blocks_of_attachments_span_at_most_fifty_minutes() -> None:
    """Uploads finish out of the order they were attached (a retried one late): a block
    covers at most an hour (the server's rule), so the writer cuts them by time."""
    writer = attachments.writer({})
    hour = 3600 * 10**9
    events = [
        (ticks, f"{i:08x}-0000-4000-8000-000000000000", "n", "t", 1, "0" * 64, None)
        for i, ticks in enumerate([hour, 2 * hour + 1, hour + 10, 3 * hour])
    ]
    blocks, repairs = writer.blocks(events, 1024 * 1024)
    assert repairs.dropped == 0
    assert [block.object_count for block in blocks] == [2, 1, 1]
