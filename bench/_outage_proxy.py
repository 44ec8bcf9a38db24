"""``python _outage_proxy.py PORT TARGET SECONDS``: forwards POSTs to TARGET, except for SECONDS
from the first request on, when it answers 503 with ``Retry-After: 1`` (an ingestion outage).
Prints nothing; run by ``_sdk_server.outage``."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, TARGET, SECONDS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
first: list[float] = []


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not first:
            first.append(time.monotonic())
        if time.monotonic() - first[0] < SECONDS:
            self._answer(503, {"Retry-After": "1"}, b'{"error": {"code": "unavailable"}}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = urllib.request.Request(TARGET + self.path, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self._answer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            self._answer(error.code, dict(error.headers.items()), error.read())

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Proxy)
server.daemon_threads = True
server.serve_forever()
