"""SIGKILL of the real server (``blocklake serve``, another process) while the SDK uploads:
after a restart on the same data directory, every event is stored exactly once.

Stored means in the raw blocks ingest keeps: what the SDK is answerable for. (Converting them to
Parquet after a kill is the server's side: a block stored just before the kill may wait for a
reconciler, which does not exist yet.)"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from blocklake import sdk
from blocklake.format.arrow import decode_block
from blocklake.format.schema import event_types

API_KEY = "blocklake-local"
BLOCKLAKE = Path(sys.executable).with_name("blocklake")


def serve(data: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BLOCKLAKE), "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BLOCKLAKE_API_KEYS": f"{API_KEY}=local"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return process
        time.sleep(0.05)
    raise AssertionError("the server did not start")


def stored_messages(data: Path) -> list[str]:
    """Messages of every raw block stored (one file per block id, whatever the retries)."""
    layout = {event_type.id: event_type for event_type in event_types().values()}
    messages = []
    for path in data.rglob("*.blk"):
        block = decode_block(path.read_bytes(), layout)
        if "log_entry" in block.sections:
            messages.extend(block.sections["log_entry"].column("message").to_pylist())
    return messages


def test_server_killed_mid_upload_then_restarted_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = serve(tmp_path, port)
    try:
        sdk.init(url, API_KEY, flush_at=200, flush_interval=0.05)
        sdk._flusher.uploader.backoff = 0.05
        sdk._flusher.uploader.max_backoff = 0.2
        total = 0
        for phase in ("before", "while down", "after"):
            started = time.monotonic()
            while time.monotonic() - started < 0.6:
                for _ in range(200):
                    sdk.info(f"m{total}", target="killed")
                    total += 1
                time.sleep(0.005)  # the uploader is sending blocks all along
            if phase == "before":
                server.send_signal(signal.SIGKILL)  # mid-upload: blocks are in flight
                server.wait()
            elif phase == "while down":
                server = serve(tmp_path, port)
        assert sdk.flush(timeout=60), sdk.stats()
        stats = sdk.stats()
        assert stats["acknowledged"] == stats["recorded"] == total and stats["retries"] >= 1
        messages = stored_messages(tmp_path)
        assert len(messages) == len(set(messages)) == total
    finally:
        sdk.shutdown(timeout=5)
        server.kill()
        server.wait()
