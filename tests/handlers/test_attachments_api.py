"""The attachment API on the local server, as any HTTP client meets it: refusals name the
field, a repeated declaration or upload stores nothing twice, the upload must be the declared
size and SHA-256, and another tenant's id is not found."""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocklake.config import Settings
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

MAX = 64 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    settings = Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS), max_attachment_bytes=MAX)
    with LocalServer(settings, port=0) as running:
        yield running


def call(
    server: LocalServer,
    method: str,
    path: str,
    body: bytes | dict | None = None,
    *,
    key: str | None = "key-acme",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request on a connection of its own."""
    address = urllib.parse.urlsplit(server.url).netloc
    connection = http.client.HTTPConnection(address, timeout=30)
    sent = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def declaration(data: bytes, **overrides: object) -> dict:
    return {
        "attachment_id": str(uuid.uuid4()),
        "name": "crash.dmp",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **overrides,
    }


def stored(server: LocalServer, tenant: str = "acme") -> list[str]:
    """Every file under the tenant's attachments, temporary ones included."""
    folder = server.lake.blobs.root / "attachments" / f"tenant={tenant}"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"name": ""}, 400, "invalid_name", "name"),
        ({"name": "a\0b"}, 400, "invalid_name", "name"),
        ({"name": "x" * 1025}, 400, "invalid_name", "name"),
        ({"size": -1}, 400, "invalid_size", "size"),
        ({"size": "12"}, 400, "invalid_size", "size"),
        ({"size": True}, 400, "invalid_size", "size"),
        ({"size": MAX + 1}, 413, "attachment_too_large", "size"),
        ({"sha256": "abc"}, 400, "invalid_sha256", "sha256"),
        ({"content_type": "not a type"}, 400, "invalid_content_type", "content_type"),
        (
            {"content_type": "text/plain\r\nX-Injected: 1"},
            400,
            "invalid_content_type",
            "content_type",
        ),
        ({"attachment_id": "../../raw"}, 400, "invalid_attachment_id", "attachment_id"),
        (
            {"attachment_id": str(uuid.uuid4()).upper()},
            400,
            "invalid_attachment_id",
            "attachment_id",
        ),
        ({"path": "/etc/passwd"}, 400, "unknown_field", "path"),
    ],
)
def test_a_bad_declaration_is_refused_naming_its_field(
    server: LocalServer, change: dict, status: int, code: str, field: str
) -> None:
    answer_status, _, body = call(server, "POST", "/v1/attachments", declaration(b"x", **change))
    answer = json.loads(body)
    assert (answer_status, answer["error"]["code"]) == (status, code)
    assert field in answer["error"]["message"]
    if status == 413:
        assert answer["limits"] == {"max_attachment_bytes": MAX}
    assert stored(server) == []


def test_declaring_and_uploading_again_stores_nothing_twice(server: LocalServer) -> None:
    data = b"dump" * 1000
    document = declaration(data)
    attachment_id = document["attachment_id"]
    status, _, body = call(server, "POST", "/v1/attachments", document)
    first = json.loads(body)
    assert status == 201 and first["status"] == "created"
    assert first["upload"] == {
        "url": f"/v1/attachments/{attachment_id}",
        "method": "PUT",
        "headers": {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
    }
    status, _, body = call(server, "POST", "/v1/attachments", document)
    assert (status, json.loads(body)["status"]) == (200, "exists")
    status, _, body = call(
        server, "PUT", first["upload"]["url"], data, headers=first["upload"]["headers"]
    )
    assert (status, json.loads(body)["status"]) == (201, "stored")
    status, _, body = call(
        server, "PUT", first["upload"]["url"], data, headers=first["upload"]["headers"]
    )
    assert (status, json.loads(body)["status"]) == (200, "duplicate")
    status, _, body = call(server, "POST", "/v1/attachments", document)
    again = json.loads(body)
    assert (status, again["status"]) == (200, "uploaded") and "upload" not in again
    assert stored(server) == [f"{attachment_id}.data", f"{attachment_id}.json"]
    # the same id with other values: refused, the first declaration kept
    status, _, body = call(server, "POST", "/v1/attachments", {**document, "size": 3})
    assert (status, json.loads(body)["error"]["code"]) == (409, "attachment_conflict")
    status, headers, body = call(server, "GET", f"/v1/attachments/{attachment_id}")
    assert (status, body) == (200, data)
    assert (
        headers["Content-Disposition"]
        == "attachment; filename=\"crash.dmp\"; filename*=UTF-8''crash.dmp"
    )


def test_an_upload_must_be_the_declared_size_and_checksum(server: LocalServer) -> None:
    data = b"0123456789" * 700
    document = declaration(data)
    path = f"/v1/attachments/{document['attachment_id']}"
    assert call(server, "POST", "/v1/attachments", document)[0] == 201
    status, _, body = call(server, "PUT", path, data + b"!")  # one byte more
    assert (status, json.loads(body)["error"]["code"]) == (400, "size_mismatch")
    assert "Content-Length" in json.loads(body)["error"]["message"]
    swapped = data[:-1] + b"?"
    status, _, body = call(server, "PUT", path, swapped)
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (400, "checksum_mismatch")
    assert "sha256" in error["message"]
    status, _, body = call(server, "PUT", path, b"x" * (MAX + 1))
    assert (status, json.loads(body)["error"]["code"]) == (413, "body_too_large")
    assert stored(server) == [f"{document['attachment_id']}.json"]  # no bytes, no temporary file
    status, _, body = call(server, "GET", path)
    assert (status, json.loads(body)["error"]["code"]) == (404, "attachment_not_uploaded")
    assert call(server, "PUT", path, data)[0] == 201
    assert call(server, "GET", path)[2] == data


def test_another_tenants_attachment_is_not_found(server: LocalServer) -> None:
    data = b"secret of acme"
    document = declaration(data)
    path = f"/v1/attachments/{document['attachment_id']}"
    assert call(server, "POST", "/v1/attachments", document)[0] == 201
    assert call(server, "PUT", path, data)[0] == 201
    for method, body in (("GET", None), ("PUT", data)):
        status, _, answer = call(server, method, path, body, key="key-globex")
        assert (status, json.loads(answer)["error"]["code"]) == (404, "unknown_attachment")
        status, _, answer = call(server, method, path, body, key=None)
        assert (status, json.loads(answer)["error"]["code"]) == (401, "unauthorized")
    # globex declaring the same id gets its own, separate attachment
    status, _, body = call(server, "POST", "/v1/attachments", document, key="key-globex")
    assert (status, json.loads(body)["status"]) == (201, "created")
    assert stored(server, "globex") == [f"{document['attachment_id']}.json"]
    status, _, answer = call(server, "GET", "/v1/attachments/not-an-id")
    assert (status, json.loads(answer)["error"]["code"]) == (400, "invalid_attachment_id")
