"""Transport against a real local HTTP server: one attempt per call, each failure classified
(transient, unknown registration, permanent) with the server's Retry-After and limits."""

from __future__ import annotations

import email.utils
import json
import os
import socket
import time

import pytest
from sdk_fake_server import FakeServer

from blocklake.format.header import CONTENT_TYPE
from blocklake.sdk.transport import DeliveryError, Transport, retry_after_seconds

OK = (200, {"Content-Type": "application/json"}, b'{"accepted": true}')


def transport(server: FakeServer) -> Transport:
    return Transport(server.url, "secret-key", timeout=5)


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


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, b"", "transient"),
        (502, b"<html>bad gateway</html>", "transient"),
        (503, b'{"error": {"code": "unavailable"}}', "transient"),
        (408, b"", "transient"),
        (429, b"", "transient"),
        (400, b'{"error": {"code": "invalid_block", "message": "bad"}}', "permanent"),
        (401, b"", "permanent"),
        (403, b"", "permanent"),
        (404, b'{"error": {"code": "not_found"}}', "permanent"),
        (404, b'{"error": {"code": "unknown_stream", "message": "x"}}', "unknown"),
        (404, b'{"error": {"code": "unknown_process", "message": "x"}}', "unknown"),
        (413, b'{"error": {"code": "block_too_large"}}', "permanent"),
        (422, b"", "permanent"),
    ],
)
def test_each_answer_is_classified_and_tried_once(
    server: FakeServer, status: int, body: bytes, kind: str
) -> None:
    server.script = [(status, {}, body), OK]
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_block(b"x")
    assert raised.value.kind == kind and raised.value.status == status
    assert raised.value.permanent is (kind == "permanent")
    assert str(status) in str(raised.value)
    assert len(server.requests) == 1  # retrying is the uploader's job


def test_retry_after_and_limits_are_read_from_a_refusal(server: FakeServer) -> None:
    body = json.dumps(
        {"error": {"code": "body_too_large"}, "limits": {"max_block_bytes": 123456}}
    ).encode()
    server.script = [(429, {"Retry-After": "7"}, b""), (413, {}, body)]
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_block(b"x")
    assert raised.value.retry_after == 7.0
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_block(b"x")
    assert raised.value.code == "body_too_large"
    assert raised.value.limits == {"max_block_bytes": 123456}


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(later) <= 31
    assert retry_after_seconds(email.utils.formatdate(0, usegmt=True)) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens there now
    with pytest.raises(DeliveryError) as raised:
        Transport(f"http://127.0.0.1:{port}", "k", timeout=2).post_block(b"x")
    assert raised.value.kind == "transient"


@pytest.mark.parametrize("body", [b"", b"<html>ok</html>", b"[1, 2]"])
def test_a_success_without_a_json_object_is_an_empty_answer(
    server: FakeServer, body: bytes
) -> None:
    server.script = [(200, {}, body)]
    assert transport(server).post_json("/v1/processes", {}) == {}


def test_json_sent_is_valid_utf8_even_from_a_surrogate_escaped_file_name(
    server: FakeServer,
) -> None:
    """Input 5: ``os.fsdecode`` of a Latin-1 file name holds a lone surrogate."""
    exe = os.fsdecode(b"/opt/app/caf\xe9.py")
    transport(server).post_json("/v1/processes", {"exe": exe, "properties": {exe: exe}})
    (request,) = server.requests
    document = json.loads(request.body.decode("utf-8", "strict"))
    document["exe"].encode("utf-8", "strict")  # no surrogate left
    assert document["exe"] == "/opt/app/caf?.py"
    assert document["properties"] == {"/opt/app/caf?.py": "/opt/app/caf?.py"}


def test_an_endpoint_ending_in_a_slash_and_a_425_with_odd_fields(server: FakeServer) -> None:
    server.script = [(425, {"Retry-After": " 3 "}, b'{"error": "busy", "limits": [1]}')]
    with pytest.raises(DeliveryError) as raised:
        Transport(server.url + "/", "k", timeout=5).post_block(b"x")
    assert [r.path for r in server.requests] == ["/v1/blocks"]
    error = raised.value
    assert (error.kind, error.status, error.code) == ("transient", 425, "")
    assert (error.retry_after, error.limits) == (3.0, {})


def test_a_refusal_names_the_path_and_status_and_cuts_a_long_body(server: FakeServer) -> None:
    server.script = [(400, {}, b"\xff" + b"x" * 2000)]
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_json("/v1/streams", {})
    assert str(raised.value) == "POST /v1/streams: 400 \ufffd" + "x" * 499
    assert raised.value.retry_after is None


def test_only_strings_are_changed_in_what_is_sent(server: FakeServer) -> None:
    document = {"n": 1, "x": 1.5, "none": None, "flag": True, "pair": ("a", "\udce9")}
    transport(server).post_json("/v1/processes", document)
    (request,) = server.requests
    expected = {"n": 1, "x": 1.5, "none": None, "flag": True, "pair": ["a", "?"]}
    assert json.loads(request.body) == expected


def test_a_connection_error_has_no_status_nor_code_and_names_the_path() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryError) as raised:
        Transport(f"http://127.0.0.1:{port}", "k", timeout=2).post_json("/v1/streams", {})
    error = raised.value
    assert (error.status, error.code, error.retry_after, error.limits) == (0, "", None, {})
    assert str(error).startswith("POST /v1/streams: ")


def test_a_refusal_without_a_code_has_an_empty_code(server: FakeServer) -> None:
    server.script = [(400, {}, b'{"error": {"message": "no code"}}')]
    with pytest.raises(DeliveryError) as raised:
        transport(server).post_block(b"x")
    assert (raised.value.kind, raised.value.code) == ("permanent", "")


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(DeliveryError) as raised:
            Transport(url, "k", timeout=0.5).post_block(b"x")
        assert raised.value.kind == "transient"
        assert time.monotonic() - started < 5
