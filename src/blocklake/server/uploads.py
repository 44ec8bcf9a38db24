"""The local server's own attachment transfers, streamed rather than read whole:
``PUT /v1/attachments/<id>`` writes the body to disk while hashing it (the size and SHA-256
declared by ``POST /v1/attachments`` enforced, as a presigned S3 PUT enforces them), and
``GET /v1/attachments/<id>`` sends the file. Both take the tenant's API key; another tenant's
id is 404. With the lake on S3 neither is used: the API answers presigned URLs instead.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler

from blocklake.attachments import CHUNK_BYTES, PATH
from blocklake.errors import ClientError
from blocklake.server.lake import UNAUTHORIZED, HttpResponse, LocalLake

MIN_UPLOAD_BYTES_PER_S = 256 * 1024
"""An upload may take the request timeout plus its size at this rate: a deadline for the whole
body (a trickling client cannot hold a thread forever), generous for a slow link."""
_ID_PATH = re.compile(r"^/v1/attachments/([^/]+)$")


def _answer(status: int, document: dict) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(document).encode())


def _refusal(error: ClientError) -> HttpResponse:
    return _answer(error.status, error.to_json())


def safe_header_value(value: object) -> str:
    """``value`` as a header value: a control character (CR and LF above all: they would end
    the header early and let the value write the rest of the answer) becomes a space. The
    standard library's ``send_header`` checks nothing; every header the server sends passes
    here."""
    text = str(value)
    if text.isprintable() and text.isascii():
        return text
    return "".join(c if c == "\t" or (c.isprintable() and c.isascii()) else " " for c in text)


class AttachmentTransfers(BaseHTTPRequestHandler):
    """Mixed into the server's request handler (``server/http.py``)."""

    lake: LocalLake

    def transfers_attachment(self, method: str, path: str) -> bool:
        """Handles the request if it is an attachment's upload or download on a local store."""
        match = _ID_PATH.match(path)
        if method not in ("PUT", "GET") or not self.lake.streams_attachments:
            return False
        if match is None:
            if not path.startswith(f"{PATH}/"):
                return False
            # /v1/attachments/, /v1/attachments/<id>/x, /v1/attachments/a/../<id>: no route
            self._refuse(
                _answer(
                    404,
                    {
                        "error": {
                            "code": "not_found",
                            "message": f"no route {method} {path[:120]!r}: attachments are "
                            f"{PATH}/<attachment_id>",
                        }
                    },
                ),
                None if method == "PUT" else 0,
            )
            return True
        tenant = self.lake.tenant_of({k.lower(): v for k, v in self.headers.items()})
        if tenant is None:
            self._refuse(UNAUTHORIZED, None if method == "PUT" else 0)
        elif method == "PUT":
            self._receive(tenant, match[1])
        else:
            self._send(tenant, match[1])
        return True

    def _receive(self, tenant: str, attachment_id: str) -> None:
        length = self._content_length(self.lake.attachments.max_bytes)
        if isinstance(length, HttpResponse):
            known = length.status == 413  # a valid length: the body's extent is known
            self._refuse(length, int(self.headers["Content-Length"]) if known else None)
            return
        deadline = time.monotonic() + self.timeout + length / MIN_UPLOAD_BYTES_PER_S
        consumed = 0

        def read(size: int) -> bytes:
            nonlocal consumed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.connection.settimeout(min(remaining, self.timeout))
            chunk = self.rfile.read1(min(size, CHUNK_BYTES))
            consumed += len(chunk)
            return chunk

        try:
            answer = self.lake.attachments.receive(tenant, attachment_id, length, read)
        except ClientError as error:
            self._refuse(_refusal(error), length - consumed)
            return
        except TimeoutError:
            self._refuse(
                _answer(
                    408,
                    {
                        "error": {
                            "code": "request_timeout",
                            "message": "the attachment's body did not arrive in time",
                        }
                    },
                ),
                None,
            )
            return
        finally:
            self.connection.settimeout(self.timeout)
        self._respond(_answer(201 if answer["status"] == "stored" else 200, answer))

    def _send(self, tenant: str, attachment_id: str) -> None:
        try:
            declared, path = self.lake.attachments.local_file(tenant, attachment_id)
        except ClientError as error:
            self._respond(_refusal(error))
            return
        try:
            with open(path, "rb") as file:
                self.send_response(200)
                for name, value in declared.download_headers().items():
                    self.send_header(name, safe_header_value(value))
                self.send_header("Content-Length", str(declared.size))
                self.end_headers()
                while chunk := file.read(CHUNK_BYTES):
                    self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: nothing more to do for it
