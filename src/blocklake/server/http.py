"""A threaded HTTP server in front of ``LocalLake``, with the body size limits API Gateway has."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from blocklake.config import Settings
from blocklake.server.lake import HttpResponse, LocalLake


class _RequestHandler(BaseHTTPRequestHandler):
    lake: LocalLake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # access logs would drown the demo
        pass

    def _respond(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _handle(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        limit = self.lake.settings.max_block_bytes + 64 * 1024
        if length > limit:
            self.close_connection = True
            error = {"code": "body_too_large", "message": f"request body is over {limit} bytes"}
            self._respond(
                HttpResponse(
                    413, {"content-type": "application/json"}, json.dumps({"error": error}).encode()
                )
            )
            return
        body = self.rfile.read(length) if length else b""
        self._respond(
            self.lake.handle_http(
                method, path, query, dict(self.headers.items()), body, self.client_address[0]
            )
        )

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")


class LocalServer:
    """``LocalLake`` behind HTTP on a background thread; port 0 picks a free port."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.lake = LocalLake(settings)
        handler = type("Handler", (_RequestHandler,), {"lake": self.lake})
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
