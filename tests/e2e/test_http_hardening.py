"""The local HTTP server answers every request with JSON (issue 10, item 7): bad or huge
Content-Length, bodies that never finish, refused bodies still being sent, internal errors."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time

import pytest

from blocklake.config import Settings
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

API_KEY = next(iter(KEYS))


@pytest.fixture
def server(settings: Settings):
    with LocalServer(settings, port=0, request_timeout_s=1.0) as running:
        yield running


def raw_request(server: LocalServer, head: str, body: bytes = b"", *, wait: float = 10) -> bytes:
    """Sends ``head`` (request line and headers, without the blank line) and ``body`` as they
    are, and returns everything the server sends until it closes the connection."""
    host, port = server.httpd.server_address[:2]
    with socket.create_connection((host, port), timeout=wait) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def answer(received: bytes) -> tuple[int, dict]:
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def blocks_head(length: str) -> str:
    return (
        f"POST /v1/blocks HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close"
    )


@pytest.mark.parametrize("length", ["-1", "-314572800", "abc", "1e6", " ", "99999999999999999999"])
def test_a_malformed_content_length_is_answered(server: LocalServer, length: str) -> None:
    started = time.perf_counter()
    status, document = answer(raw_request(server, blocks_head(length), b"x" * 10))
    assert status in (400, 413), document
    assert document["error"]["code"] in ("invalid_content_length", "body_too_large")
    assert time.perf_counter() - started < 8  # nothing buffered, nothing waited for


def test_two_content_lengths_are_refused(server: LocalServer) -> None:
    head = blocks_head("5") + "\r\nContent-Length: 7"
    status, document = answer(raw_request(server, head, b"x" * 7))
    assert (status, document["error"]["code"]) == (400, "invalid_content_length")


def test_chunked_bodies_are_refused(server: LocalServer) -> None:
    head = blocks_head("0").replace("Content-Length: 0", "Transfer-Encoding: chunked")
    status, document = answer(raw_request(server, head, b"5\r\nhello\r\n0\r\n\r\n"))
    assert (status, document["error"]["code"]) == (411, "length_required")


def test_a_post_without_content_length_is_refused_and_closed(server: LocalServer) -> None:
    """Its body must not be read as the next request on the connection (smuggling)."""
    head = (
        f"POST /v1/blocks HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
        "Content-Type: application/octet-stream"
    )
    smuggled = f"GET /v1/health HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n\r\n"
    received = raw_request(server, head, smuggled.encode())
    status, document = answer(received)
    assert (status, document["error"]["code"]) == (411, "length_required")
    assert received.count(b"HTTP/1.") == 1  # one answer, then the connection is closed


def test_a_body_that_never_finishes_times_out(server: LocalServer) -> None:
    started = time.perf_counter()
    status, document = answer(raw_request(server, blocks_head("1000"), b"only part of it"))
    assert (status, document["error"]["code"]) == (408, "request_timeout")
    assert time.perf_counter() - started < 8


def test_a_trickling_body_times_out_too(server: LocalServer) -> None:
    host, port = server.httpd.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(blocks_head("1000").encode() + b"\r\n\r\n")
        started = time.perf_counter()
        received = b""
        try:
            while time.perf_counter() - started < 8:
                connection.sendall(b"x")  # a byte every 0.2 s resets any per-read timeout
                time.sleep(0.2)
                connection.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    received += connection.recv(65536)
                connection.setblocking(True)
                if received:
                    while chunk := connection.recv(65536):  # the rest, up to the close
                        received += chunk
                    break
        except OSError:
            pass
    assert answer(received)[0] == 408
    assert time.perf_counter() - started < 8


def test_an_oversized_body_gets_its_413_not_a_broken_pipe(server: LocalServer) -> None:
    body = b"\0" * (8 * 1024 * 1024)  # the client sends it all before reading the answer
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request(
        "POST",
        "/v1/blocks",
        body,
        {"x-api-key": API_KEY, "content-type": "application/octet-stream"},
    )
    response = connection.getresponse()
    document = json.loads(response.read())
    assert (response.status, document["error"]["code"]) == (413, "body_too_large")
    assert document["limits"] == {"max_block_bytes": server.lake.settings.max_block_bytes}
    connection.close()


def test_an_internal_error_is_a_json_500(server: LocalServer, monkeypatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.lake, "handle_http", broken)
    status, document = answer(raw_request(server, blocks_head("2"), b"ab"))
    assert (status, document["error"]["code"]) == (500, "internal_error")
    assert "a bug" not in json.dumps(document)  # no internals, no traceback


def test_the_server_still_serves_after_all_that(server: LocalServer) -> None:
    for length in ("-1", "abc"):
        raw_request(server, blocks_head(length))
    received = raw_request(server, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close")
    assert answer(received) == (200, {"status": "ok"})


def test_headers_that_trickle_are_cut_off(server: LocalServer) -> None:
    host, port = server.httpd.server_address[:2]
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"POST /v1/blocks HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            while time.perf_counter() - started < 8:
                connection.sendall(b"X")  # one header byte at a time, never a full line
                time.sleep(0.2)
    assert time.perf_counter() - started < 5  # the server closed the connection


def test_a_keep_alive_connection_can_still_make_several_requests(server: LocalServer) -> None:
    host, port = server.httpd.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(3):
        connection.request("GET", "/health")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
    connection.close()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("\x00\x01\x02 GARBAGE", 400),
        ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 100_000, 431),
        ("BREW /v1/query HTTP/1.1\r\nHost: x\r\nConnection: close", 501),
        ("PUT /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close", 404),
        ("DELETE /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close", 404),
    ],
)
def test_what_the_standard_library_refuses_is_json_too(
    server: LocalServer, head: str, status: int
) -> None:
    """The query sandbox's attacker found these answered as HTML."""
    received = raw_request(server, head)
    if not received.startswith(b"HTTP/"):  # no version in the request line: HTTP/0.9, no head
        received = b"HTTP/1.0 " + str(status).encode() + b" x\r\n\r\n" + received
    got, document = answer(received)
    assert got == status
    assert document["error"]["code"] in (f"http_{status}", "not_found")


@pytest.mark.parametrize("name", ["Authorization: Bearer", "x-api-key:"])
def test_a_repeated_key_header_is_refused(server: LocalServer, name: str) -> None:
    """Found by the second attack on the sandbox: the last of two keys won."""
    head = (
        f"POST /v1/query HTTP/1.1\r\nHost: x\r\n{name} {API_KEY}\r\n{name} key-globex\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close"
    )
    status, document = answer(raw_request(server, head, b"{}"))
    assert (status, document["error"]["code"]) == (400, "invalid_header")


def test_other_methods_are_named_as_sent(server: LocalServer) -> None:
    head = "DELETE /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close"
    status, document = answer(raw_request(server, head))
    assert status == 404 and "DELETE /v1/query" in document["error"]["message"]
