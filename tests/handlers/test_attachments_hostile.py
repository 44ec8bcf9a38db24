"""Report B of issue 12 (attachments), each finding as a fast test: no header injection through
a content type (declared, stored before the check, or on the way to the client), no 500 for a
malformed path, no download saved without a size and digest to check."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from email.message import Message
from pathlib import Path

import pytest

from blocklake import client
from blocklake.attachments import (
    AttachmentService,
    Declaration,
    content_disposition,
    data_key,
    declaration_key,
)
from blocklake.errors import ClientError
from blocklake.format.media_type import valid_content_type
from blocklake.server.http import LocalServer
from blocklake.server.uploads import safe_header_value
from blocklake.stores.blobs import LocalBlobStore
from tests.handlers.test_attachments_api import call, declaration, server, stored  # noqa: F401


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain\r\n\r\n; <script>alert(1)</script>",
        "text/plain\n",
        "text/plain; a=b\r\n",
        "text/plain;\r\n x=y",
        'text/plain; charset="a\rb"',
        "text/plain; a=b c",
        "text/plain\x00",
        "text/pl\u00e9in",
    ],
)
def test_a_content_type_that_could_split_a_header_is_refused(
    server: LocalServer,  # noqa: F811
    content_type: str,
) -> None:
    status, _, body = call(
        server, "POST", "/v1/attachments", declaration(b"x", content_type=content_type)
    )
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (400, "invalid_content_type")
    assert "content_type" in error["message"]
    assert stored(server) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "application/vnd.api+json",
        'text/plain; charset="utf-8"',
        "text/plain;charset=utf-8; format=flowed",
        'multipart/mixed; boundary="a \\"b\\""',
    ],
)
def test_a_media_type_with_parameters_is_accepted(content_type: str) -> None:
    assert valid_content_type(content_type)


def test_a_stored_declaration_with_a_bad_type_never_reaches_a_header(
    server: LocalServer,  # noqa: F811
) -> None:
    """A declaration stored before the check was strict: sent as application/octet-stream."""
    data = b"payload"
    attachment_id = str(uuid.uuid4())
    forged = Declaration(
        attachment_id,
        "x.txt",
        "text/plain\r\nX-Injected: 1\r\n\r\nforged",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    blobs = server.lake.blobs
    blobs.put_if_absent(
        declaration_key("acme", attachment_id), json.dumps(forged.__dict__).encode()
    )
    assert call(server, "PUT", f"/v1/attachments/{attachment_id}", data)[0] == 201
    status, headers, body = call(server, "GET", f"/v1/attachments/{attachment_id}")
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "application/octet-stream"
    assert "X-Injected" not in headers


def test_a_header_value_never_carries_a_control_character() -> None:
    assert safe_header_value("a\r\nb: c\x00") == "a  b: c "
    assert safe_header_value("text/plain; a=b") == "text/plain; a=b"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/attachments/",
        f"/v1/attachments/{uuid.UUID(int=0xA1)}/",
        f"/v1/attachments/{uuid.UUID(int=0xA2)}/x",
        "/v1/attachments//",
        f"/v1/attachments/a/../{uuid.UUID(int=0xA3)}",
        "/v1/attachments/../../etc/passwd",
    ],
)
def test_a_malformed_attachment_path_is_a_json_404(
    server: LocalServer,  # noqa: F811
    path: str,
) -> None:
    for method, body in (("GET", None), ("PUT", b"x")):
        status, _, answer = call(server, method, path, body)
        assert (status, json.loads(answer)["error"]["code"]) == (404, "not_found")


class _Answer(io.BytesIO):
    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        super().__init__(data)
        self.headers = Message()
        for name, value in headers.items():
            self.headers[name] = value


@pytest.mark.parametrize("missing", ["Content-Length", "Repr-Digest"])
def test_a_download_without_a_size_or_digest_is_not_saved(tmp_path: Path, missing: str) -> None:
    """Headers ended early (a split header) leave the body unchecked: refused, nothing saved."""

    data = b"bytes"
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    headers = {"Content-Length": str(len(data)), "Repr-Digest": f"sha-256=:{digest}:"}
    del headers[missing]
    with pytest.raises(client.QueryError) as refused:
        client._save(_Answer(data, headers), tmp_path / "out", headers.get("Repr-Digest"))
    assert refused.value.code == "download_corrupt"
    assert list(tmp_path.iterdir()) == []
    headers = {"Content-Length": str(len(data))}
    got = client._save(_Answer(data, headers), tmp_path / "out", f"sha-256=:{digest}:")
    assert got.path.read_bytes() == data


class _SigningStore(LocalBlobStore):
    """A local store that presigns, as S3 does: records what a presigned GET was asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked: list[dict] = []

    def presigned_put(self, key: str, **options: object) -> str:
        return f"https://bucket/{key}"

    def presigned_get(self, key: str, **options: object) -> str:
        self.asked.append(options)
        return f"https://bucket/{key}"


def test_a_presigned_get_never_asks_for_a_bad_response_content_type(tmp_path: Path) -> None:
    store = _SigningStore(tmp_path)
    service = AttachmentService(store, 1024)
    attachment_id = str(uuid.uuid4())
    forged = Declaration(attachment_id, "x", "text/plain\r\nX-Injected: 1", 1, "0" * 64)
    text = json.dumps(forged.__dict__).encode()
    store.put_if_absent(declaration_key("acme", attachment_id), text)
    store.put_if_absent(data_key("acme", attachment_id), b"x")
    service.download_url("acme", attachment_id)
    assert store.asked[0]["content_type"] == "application/octet-stream"


def _answer_of(data: bytes, name: str) -> tuple[_Answer, str]:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    headers = {
        "Content-Length": str(len(data)),
        "Content-Disposition": content_disposition(name),
    }
    return _Answer(data, headers), f"sha-256=:{digest}:"


def test_a_file_of_the_uploaders_name_is_not_replaced_without_force(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_bytes(b"all:\n")
    answer, digest = _answer_of(b"evil", "Makefile")
    with pytest.raises(client.QueryError) as refused:
        client._save(answer, tmp_path, digest)
    assert refused.value.code == "file_exists"
    assert (tmp_path / "Makefile").read_bytes() == b"all:\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile"]  # no temporary file left
    answer, digest = _answer_of(b"new", "Makefile")
    client._save(answer, tmp_path, digest, True)  # --force
    assert (tmp_path / "Makefile").read_bytes() == b"new"
    answer, digest = _answer_of(b"named", "Makefile")
    client._save(answer, tmp_path / "Makefile", digest)  # -o FILE: the user named it
    assert (tmp_path / "Makefile").read_bytes() == b"named"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a\x1b[31mred\x07.txt", "a_[31mred_.txt"),
        ("line\nbreak\r.txt", "line_break_.txt"),
        ("c1\x85\x9b.txt", "c1__.txt"),
        ("../../.bashrc", "bashrc"),
        ("\x00", "_"),
    ],
)
def test_a_saved_name_holds_no_control_character(name: str, expected: str) -> None:
    assert client._filename(content_disposition(name)) == expected


def test_a_long_name_is_cut_to_what_a_file_system_allows(tmp_path: Path) -> None:
    name = "é" * 600 + ".tar.gz"
    saved = client._filename(content_disposition(name))
    assert len(saved.encode()) <= 255 and saved.endswith(".gz")
    answer, digest = _answer_of(b"bytes", name)
    got = client._save(answer, tmp_path, digest)
    assert got.path.read_bytes() == b"bytes" and got.path.name == saved


def test_a_local_write_failure_is_not_reported_as_the_network(tmp_path: Path) -> None:
    answer, digest = _answer_of(b"bytes", "x")
    with pytest.raises(client.QueryError) as refused:
        client._save(answer, tmp_path / "missing-dir" / "x", digest)
    assert refused.value.code == "cannot_write"


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS"])
def test_a_method_no_route_takes_is_not_asked_for_a_length(
    server: LocalServer,  # noqa: F811
    method: str,
) -> None:
    status, _, answer = call(server, method, f"/v1/attachments/{uuid.uuid4()}")
    assert status in (404, 405), answer
    assert "error" in json.loads(answer)


def test_a_presigned_download_from_a_local_store_is_a_client_error(tmp_path: Path) -> None:
    """Never a RuntimeError (500): a 404 JSON answer."""
    service = AttachmentService(LocalBlobStore(tmp_path), 1024)
    with pytest.raises(ClientError) as refused:
        service.download_url("acme", "../../etc/passwd")
    assert refused.value.status == 404
