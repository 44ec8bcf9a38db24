"""A threaded HTTP server in front of ``LocalLake``, with the body size limits API Gateway has.

Whatever a client sends, it gets a JSON answer: a ``Content-Length`` that is missing from a
body, malformed, negative or over the limit is refused before any body is read; a body that
stops arriving times out; a refused body is read and thrown away (within a time and size bound)
after the answer, so the client reads the answer instead of a broken pipe; any error inside
becomes a JSON 500.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from blocklake.config import Settings
from blocklake.server.lake import HttpResponse, LocalLake
from blocklake.server.uploads import AttachmentTransfers, safe_header_value

_log = logging.getLogger("blocklake.server")
REQUEST_TIMEOUT_S = 30.0
"""Longest wait for any part of a request (API Gateway's integration timeout is 30 s too)."""
DRAIN_TIMEOUT_S = 5.0
"""Longest time spent reading and discarding a refused body."""
MAX_DRAIN_BYTES = 256 * 1024 * 1024
"""Most bytes of a refused body read and discarded before the connection is closed."""
JSON_HEADROOM = 64 * 1024
"""Bytes a request may have beyond the largest block (the JSON of a registration, say)."""


def json_answer(status: int, code: str, message: str, **extra: object) -> HttpResponse:
    document = {"error": {"code": code, "message": message}, **extra}
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(document).encode())


class _RequestHandler(AttachmentTransfers, BaseHTTPRequestHandler):
    lake: LocalLake
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S  # socket timeout of every read and write on the connection

    def log_message(self, format: str, *args: object) -> None:  # access logs would drown the demo
        pass

    def handle_one_request(self) -> None:
        """The request line and headers must arrive within the timeout too: a client sending
        them a byte at a time (or a keep-alive connection left idle) is cut off then, since a
        socket timeout alone is reset by every byte."""
        self._header_deadline = threading.Timer(self.timeout, self._cut_off)
        self._header_deadline.start()
        try:
            super().handle_one_request()
        finally:
            self._header_deadline.cancel()

    def _cut_off(self) -> None:
        with contextlib.suppress(OSError):  # already closed
            self.connection.shutdown(socket.SHUT_RDWR)

    def _respond(self, response: HttpResponse) -> None:
        """Writes the answer; a client that hung up before reading it all (a broken pipe, a
        reset connection) is no error of the server's: the connection is closed, nothing is
        printed."""
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, safe_header_value(value))
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _refuse(self, response: HttpResponse, unread: int | None) -> None:
        """Answers, then reads and discards up to ``unread`` body bytes (all there is until the
        client stops, if None) so that the client is not cut off while still sending, then
        closes the connection."""
        self.close_connection = True
        self._respond(response)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        left = MAX_DRAIN_BYTES if unread is None else min(unread, MAX_DRAIN_BYTES)
        try:
            if unread is None:
                self.connection.shutdown(socket.SHUT_WR)  # the answer is complete
            self.connection.settimeout(DRAIN_TIMEOUT_S)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 64 * 1024))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass  # the client went away: nothing more to do for it

    def _content_length(self, attachment_limit: int | None = None) -> int | HttpResponse:
        """The body's length, or the answer refusing the request (over a block and some JSON,
        or over ``attachment_limit`` for an attachment's upload)."""
        if self.headers.get("Transfer-Encoding"):
            return json_answer(
                411, "length_required", "chunked bodies are not accepted: send Content-Length"
            )
        values = self.headers.get_all("Content-Length") or []
        if len(set(values)) > 1:
            return json_answer(
                400, "invalid_content_length", "Content-Length is given with different values"
            )
        if not values and self.command not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            # Without a length the body's end is unknown: reading none would parse the body
            # as the next request on the connection (request smuggling), so refuse and close.
            # A method that takes no body (no route takes DELETE or OPTIONS) reads none: it is
            # answered for its route (404/405), not 411.
            return json_answer(
                411, "length_required", f"{self.command} needs a Content-Length header"
            )
        text = values[0].strip() if values else "0"
        if not text.isdigit() or not text.isascii() or len(text) > 18:
            return json_answer(
                400,
                "invalid_content_length",
                f"Content-Length {text[:40]!r} is not a non-negative integer",
            )
        length = int(text)
        if attachment_limit is not None:
            limit, limits = attachment_limit, {"max_attachment_bytes": attachment_limit}
        else:
            limit = self.lake.settings.max_block_bytes + JSON_HEADROOM
            limits = {"max_block_bytes": self.lake.settings.max_block_bytes}
        if length > limit:
            return json_answer(
                413,
                "body_too_large",
                f"request body of {length} bytes is over {limit} bytes",
                limits=limits,
            )
        return length

    def _read_body(self, length: int) -> bytes | None:
        """The body, or None if it has not all arrived within the timeout: a deadline for the
        whole body, as a socket timeout alone is reset by every byte of a trickling client."""
        deadline = time.monotonic() + self.timeout
        parts: list[bytes] = []
        left = length
        try:
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(left, 1024 * 1024))
                if not chunk:
                    return None
                parts.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            return None
        finally:
            self.connection.settimeout(self.timeout)
        return b"".join(parts)

    def _handle(self, method: str) -> None:
        self._header_deadline.cancel()  # the headers are in; the body has a deadline of its own
        path, _, query = self.path.partition("?")
        for name in ("Authorization", "X-Api-Key"):
            if len(self.headers.get_all(name) or []) > 1:  # which one would a proxy believe?
                answer = json_answer(400, "invalid_header", f"header {name!r} is repeated")
                self._refuse(answer, None)
                return
        if self.transfers_attachment(method, path):  # streamed, not read whole
            return
        length = self._content_length()
        if isinstance(length, HttpResponse):
            known = length.status == 413  # a valid length: the body's extent is known
            self._refuse(length, int(self.headers["Content-Length"]) if known else None)
            return
        body = self._read_body(length)
        if body is None:
            self._refuse(
                json_answer(408, "request_timeout", "the request body did not arrive in time"),
                None,
            )
            return
        try:
            response = self.lake.handle_http(
                method, path, query, dict(self.headers.items()), body, self.client_address[0]
            )
        except Exception:
            _log.exception("request %s %s failed", method, path)
            response = json_answer(500, "internal_error", "the server failed on this request")
        self._respond(response)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library answers itself (a malformed request line, headers too
        long, an unknown method), as JSON like every other answer, then the connection closes."""
        self.close_connection = True
        reason = message or self.responses.get(code, ("error",))[0]
        self._respond(json_answer(code, f"http_{code}", reason))

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:  # no route takes it: answered 404 naming the method and path
        self._handle(self.command)

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT


class LocalServer:
    """``LocalLake`` behind HTTP on a background thread; port 0 picks a free port."""

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8787,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.lake = LocalLake(settings)
        handler = type(
            "Handler", (_RequestHandler,), {"lake": self.lake, "timeout": request_timeout_s}
        )
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="blocklake-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.lake.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
