"""A small ingestion server for the SDK tests: http.server on 127.0.0.1 in a thread, recording
every request, answering from a script (status codes, headers, settings)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from blocklake.format.arrow import decode_block
from blocklake.format.header import parse_header
from blocklake.format.schema import layout_from_json


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    """What the server answered (``HANG_UP``: nothing)."""

    def json(self) -> dict:
        return json.loads(self.body)


Response = tuple[int, dict[str, str], bytes]
HANG_UP = 0
"""A response status that closes the connection without answering (the request was read and
recorded: as if the answer was lost on the way back)."""
CUT = -1
"""A response status that closes the connection without answering, the request not stored (as
a proxy that cuts the connection before forwarding it)."""


@dataclass
class FakeServer:
    """``respond(request)`` may return a response; else ``script`` is popped; else 200 ``{}``."""

    requests: list[Request] = field(default_factory=list)
    script: list[Response] = field(default_factory=list)
    respond: Callable[[Request], Response | None] | None = None
    down: bool = False
    """While set, every request gets a 503 (and is recorded in ``refused``, not ``requests``)."""
    refused: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
                status, headers, body = owner._answer(request)
                request.status = status
                if status in (HANG_UP, CUT):
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _answer(self, request: Request) -> Response:
        with self.lock:
            if self.down:
                self.refused.append(request)
                return 503, {}, b'{"error": "unavailable"}'
            self.requests.append(request)
            if self.respond is not None:
                answer = self.respond(request)
                if answer is not None:
                    return answer
            if self.script:
                return self.script.pop(0)
        return 200, {"Content-Type": "application/json"}, b"{}"

    # --- what the SDK sent ---------------------------------------------------------------

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def processes(self) -> list[dict]:
        with self.lock:
            return [r.json() for r in self.requests if r.path == "/v1/processes"]

    def streams(self) -> dict[str, dict]:
        with self.lock:
            return {
                doc["stream_id"]: doc
                for doc in (r.json() for r in self.requests if r.path == "/v1/streams")
            }

    def blocks(self) -> list[bytes]:
        """Every block stored once (answered 2xx, or received with the answer lost), as a server
        that deduplicates by block id stores them."""
        with self.lock:
            unique = {}
            for r in self.requests:
                if r.path == "/v1/blocks" and (200 <= r.status < 300 or r.status == HANG_UP):
                    unique.setdefault(parse_header(r.body).block_id, r.body)
            return list(unique.values())

    def decoded(self) -> list[tuple[dict, object]]:
        """(stream registration, decoded block) of every block received, in order."""
        streams = self.streams()
        result = []
        for data in self.blocks():
            stream = streams[str(parse_header(data).stream_id)]
            result.append((stream, decode_block(data, layout_from_json(stream["layout"]))))
        return result

    def rows(self, type_name: str, *, process_id: str | None = None) -> list[dict]:
        rows = []
        for stream, block in self.decoded():
            if process_id is not None and stream["process_id"] != process_id:
                continue
            table = block.sections.get(type_name)
            if table is not None:
                rows.extend(table.to_pylist())
        return rows


def check_order(requests: list[Request]) -> None:
    """The process is registered first and once; each stream once, before its first block."""
    assert requests and requests[0].path == "/v1/processes"
    registered: set[str] = set()
    for request in requests[1:]:
        assert request.path != "/v1/processes", "process registered twice"
        if request.path == "/v1/streams":
            stream_id = request.json()["stream_id"]
            assert stream_id not in registered, "stream registered twice"
            registered.add(stream_id)
        elif request.path == "/v1/blocks":
            assert str(parse_header(request.body).stream_id) in registered
            uuid.UUID(str(parse_header(request.body).block_id))
