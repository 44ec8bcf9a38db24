"""For the SDK benchmarks: the real local server (``blocklake serve``) in another process, and
an outage in front of it (another process too), so that the SDK's process measures only itself.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

API_KEY = "blocklake-local"
BENCH = Path(__file__).resolve().parent
BLOCKLAKE = Path(sys.executable).with_name("blocklake")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start in 60 s")


@contextlib.contextmanager
def real_server() -> Iterator[str]:
    """``blocklake serve`` on a fresh data directory; yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            [str(BLOCKLAKE), "serve", "--data-dir", data, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.kill()
            process.wait()


@contextlib.contextmanager
def outage(target: str, seconds: float) -> Iterator[str]:
    """A proxy to ``target`` that answers 503 with ``Retry-After: 1`` for ``seconds`` from the
    first request on; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "_outage_proxy.py"), str(port), target, str(seconds)]
    )
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()
