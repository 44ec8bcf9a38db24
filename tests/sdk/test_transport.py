"""Transport against a real local HTTP server: retries with backoff, Retry-After, permanent
4xx, connection refused."""

from __future__ import annotations

import json
import socket
import time

import pytest
from sdk_fake_server import FakeServer

from blocklake.format.header import CONTENT_TYPE
from blocklake.sdk.transport import DeliveryError, Transport

OK = (200, {"Content-Type": "application/json"}, b'{"accepted": true}')
UNAVAILABLE = (503, {}, b"busy")


def transport(server: FakeServer, **options) -> Transport:
    return Transport(server.url, "secret-key", timeout=5, backoff=0.01, **options)


def test_success_sends_auth_and_content_type(server: FakeServer) -> None:
    server.script = [OK]
    assert transport(server).post_json("/v1/processes", {"process_id": "p"}) == {"accepted": True}
    assert transport(server).post_block(b"BLKL...") == {}
    first, second = server.requests
    assert first.path == "/v1/processes" and json.loads(first.body) == {"process_id": "p"}
    assert first.headers["Authorization"] == "Bearer secret-key"
    assert first.headers["Content-Type"] == "application/json"
    assert second.path == "/v1/blocks" and second.body == b"BLKL..."
    assert second.headers["Content-Type"] == CONTENT_TYPE


def test_retries_503_with_backoff_then_succeeds(server: FakeServer) -> None:
    server.script = [UNAVAILABLE] * 3 + [OK]
    started = time.monotonic()
    assert transport(server, attempts=5).post_json("/v1/streams", {}) == {"accepted": True}
    elapsed = time.monotonic() - started
    assert len(server.requests) == 4
    # pauses 0.01, 0.02, 0.04 with jitter in [0.5, 1): at least 0.035 s, far below a second
    assert 0.03 <= elapsed < 1.5


def test_gives_up_after_the_last_attempt_as_retryable(server: FakeServer) -> None:
    server.script = [UNAVAILABLE] * 10
    with pytest.raises(DeliveryError) as raised:
        transport(server, attempts=3).post_block(b"x")
    assert raised.value.permanent is False
    assert "503" in str(raised.value)
    assert len(server.requests) == 3


def test_backoff_is_capped(server: FakeServer) -> None:
    server.script = [UNAVAILABLE] * 5 + [OK]
    started = time.monotonic()
    Transport(server.url, "k", backoff=0.05, max_backoff=0.05, attempts=6).post_block(b"x")
    assert time.monotonic() - started < 0.05 * 5 + 0.5


def test_429_honours_retry_after(server: FakeServer) -> None:
    server.script = [(429, {"Retry-After": "1"}, b"slow down"), OK]
    started = time.monotonic()
    assert transport(server).post_block(b"x") == {"accepted": True}
    elapsed = time.monotonic() - started
    assert len(server.requests) == 2
    assert elapsed >= 1.0, f"retried after {elapsed:.3f} s although the server said 1 s"


def test_429_without_retry_after_uses_backoff(server: FakeServer) -> None:
    server.script = [(429, {}, b""), OK]
    started = time.monotonic()
    transport(server).post_block(b"x")
    assert time.monotonic() - started < 0.5
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_4xx_is_permanent_and_not_retried(server: FakeServer, status: int) -> None:
    server.script = [(status, {}, b'{"error": "bad block"}')] + [OK] * 3
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_block(b"x")
    assert raised.value.permanent is True
    assert str(status) in str(raised.value) and "bad block" in str(raised.value)
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_not_permanent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens there now
    started = time.monotonic()
    with pytest.raises(DeliveryError) as raised:
        Transport(f"http://127.0.0.1:{port}", "k", timeout=2, backoff=0.01, attempts=3).post_block(
            b"x"
        )
    assert raised.value.permanent is False
    assert time.monotonic() - started < 2


def test_empty_body_is_an_empty_answer(server: FakeServer) -> None:
    server.script = [(200, {}, b"")]
    assert transport(server).post_json("/v1/processes", {}) == {}
