"""The ingest Lambda on API Gateway HTTP API v2 events: registration, upload, and every refusal."""

from __future__ import annotations

import json
import struct
import uuid

import pytest

from blocklake.config import Settings
from blocklake.format.header import HEADER_SIZE
from blocklake.ingest.service import IngestService
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import parse_raw_key
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqliteExecutor
from lambdas.ingest.handler import make_handler
from tests.helpers import http_event, log_block, process_document, stream_document


class Ingest:
    """The handler with its stores, and shortcuts to call it the way API Gateway does."""

    def __init__(self, settings: Settings, context: object) -> None:
        self.created: list[str] = []  # the object-created notifications, in order
        self.blobs = LocalBlobStore(settings.data_dir, on_created=self.created.append)
        self.metadata = SqlMetadataStore(SqliteExecutor(settings.sqlite_path))
        self.metadata.migrate()
        self.handle = make_handler(
            IngestService(self.blobs, self.metadata, settings.max_block_bytes)
        )
        self.context = context

    def call(self, path: str, body: bytes | dict, **kwargs: object) -> tuple[int, dict]:
        response = self.handle(http_event(path, body, **kwargs), self.context)
        return response["statusCode"], json.loads(response["body"])

    def registered_stream(self, tenant: str = "acme") -> str:
        process = process_document()
        assert self.call("/v1/processes", process, tenant=tenant)[0] == 201
        stream = stream_document(process["process_id"])
        assert self.call("/v1/streams", stream, tenant=tenant)[0] == 201
        return stream["stream_id"]

    def raw_keys(self) -> list[str]:
        return list(self.blobs.list("raw/"))


@pytest.fixture
def ingest(settings: Settings, context: object) -> Ingest:
    return Ingest(settings, context)


def test_registers_process_and_stream_once(ingest: Ingest, settings: Settings) -> None:
    limits = {"max_block_bytes": settings.max_block_bytes}  # the SDK sizes its blocks by it
    process = process_document()
    created = {"status": "created", "limits": limits}
    exists = {"status": "exists", "limits": limits}
    assert ingest.call("/v1/processes", process) == (201, created)
    assert ingest.call("/v1/processes", process) == (200, exists)
    stream = stream_document(process["process_id"], "log_entry", "measure")
    assert ingest.call("/v1/streams", stream) == (201, created)
    assert ingest.call("/v1/streams", stream) == (200, exists)
    stored = ingest.metadata.get_stream("acme", stream["stream_id"])
    assert [t.name for t in stored.layout.values()] == ["log_entry", "measure"]


def test_block_is_stored_untouched_under_its_hive_key(ingest: Ingest) -> None:
    stream_id = ingest.registered_stream()
    block = log_block(stream_id, ["hello", "world"])
    status, body = ingest.call("/v1/blocks", block)
    assert (status, body["status"]) == (201, "stored")
    (key,) = ingest.raw_keys()
    raw = parse_raw_key(key)
    assert (raw.tenant, raw.stream_id, raw.block_id) == ("acme", stream_id, body["block_id"])
    assert ingest.blobs.get(key) == block  # byte for byte: never decompressed or rewritten
    row = ingest.metadata.get_block("acme", body["block_id"])
    assert (row.object_count, row.object_key) == (2, key)


def test_same_block_twice_is_stored_once(ingest: Ingest) -> None:
    stream_id = ingest.registered_stream()
    block = log_block(stream_id, ["once"])
    first, second = ingest.call("/v1/blocks", block), ingest.call("/v1/blocks", block)
    assert (first[0], first[1]["status"]) == (201, "stored")
    assert (second[0], second[1]["status"]) == (200, "duplicate")
    (key,) = ingest.raw_keys()
    assert ingest.created == [key]  # one notification: the ETL converts it once
    rows = ingest.metadata.executor.query("SELECT count(*) AS n FROM blocks")
    assert rows == [{"n": 1}]


def test_a_block_id_sent_again_with_other_bytes_never_replaces_the_stored_block(
    ingest: Ingest,
) -> None:
    stream_id = ingest.registered_stream()
    block_id = uuid.uuid4()
    first = log_block(stream_id, ["first"], block_id=block_id)
    other = log_block(stream_id, ["other"], block_id=block_id)  # same header, other payload
    assert first[:72] == other[:72] and first != other
    assert ingest.call("/v1/blocks", first)[0] == 201
    status, body = ingest.call("/v1/blocks", other)
    assert (status, body["status"]) == (200, "duplicate")
    (key,) = ingest.raw_keys()
    assert ingest.blobs.get(key) == first  # the raw object, as first stored
    assert ingest.created == [key]


def test_retry_after_metadata_failure_completes_the_upload(ingest: Ingest, monkeypatch) -> None:
    stream_id = ingest.registered_stream()
    block = log_block(stream_id, ["retried"])
    original = ingest.metadata.insert_block

    def fail_once(*args: object) -> bool:
        monkeypatch.setattr(ingest.metadata, "insert_block", original)
        raise ConnectionError("database went away")

    monkeypatch.setattr(ingest.metadata, "insert_block", fail_once)
    status, body = ingest.call("/v1/blocks", block)
    assert (status, body["error"]["code"]) == (500, "internal_error")  # JSON, no traceback
    assert ingest.raw_keys() == []  # the metadata row decides before anything is stored
    status, body = ingest.call("/v1/blocks", block)  # the client's retry
    assert status == 201 and body["status"] == "stored"  # metadata was missing: not a duplicate
    assert len(ingest.raw_keys()) == 1
    assert ingest.metadata.get_block("acme", body["block_id"]) is not None


def test_retry_after_a_storage_failure_stores_the_block_once(ingest: Ingest, monkeypatch) -> None:
    stream_id = ingest.registered_stream()
    block = log_block(stream_id, ["retried"])
    original = ingest.blobs.put_if_absent

    def fail_once(*args: object) -> bool:
        monkeypatch.setattr(ingest.blobs, "put_if_absent", original)
        raise OSError("disk went away")

    monkeypatch.setattr(ingest.blobs, "put_if_absent", fail_once)
    status, body = ingest.call("/v1/blocks", block)
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert ingest.raw_keys() == [] and ingest.created == []
    # the metadata row was inserted; the retry stores the object: not a duplicate
    status, body = ingest.call("/v1/blocks", block)
    assert (status, body["status"]) == (201, "stored")
    (key,) = ingest.raw_keys()
    assert ingest.blobs.get(key) == block and ingest.created == [key]
    status, body = ingest.call("/v1/blocks", block)
    assert (status, body["status"]) == (200, "duplicate")
    assert ingest.created == [key]


def _refusal(
    ingest: Ingest, path: str, body: bytes | dict, **kwargs: object
) -> tuple[int, str, str]:
    status, document = ingest.call(path, body, **kwargs)
    return status, document["error"]["code"], document["error"]["message"]


def test_wrong_magic(ingest: Ingest) -> None:
    block = bytearray(log_block(ingest.registered_stream(), ["x"]))
    block[:4] = b"NOPE"
    status, code, message = _refusal(ingest, "/v1/blocks", bytes(block))
    assert (status, code) == (400, "invalid_block")
    assert "magic" in message
    assert ingest.raw_keys() == []


def test_truncated_body(ingest: Ingest) -> None:
    block = log_block(ingest.registered_stream(), ["x" * 100, "y"])
    status, code, message = _refusal(ingest, "/v1/blocks", block[:-5])
    assert (status, code) == (400, "invalid_block")
    assert "truncated" in message
    status, code, message = _refusal(ingest, "/v1/blocks", block[: HEADER_SIZE - 10])
    assert status == 400 and "header" in message
    assert ingest.raw_keys() == []


def test_unknown_stream(ingest: Ingest) -> None:
    unknown = str(uuid.uuid4())
    status, code, message = _refusal(ingest, "/v1/blocks", log_block(unknown, ["x"]))
    assert (status, code) == (404, "unknown_stream")
    assert unknown in message


def test_another_tenants_stream_is_unknown(ingest: Ingest) -> None:
    stream_id = ingest.registered_stream(tenant="acme")
    status, code, _ = _refusal(ingest, "/v1/blocks", log_block(stream_id, ["x"]), tenant="globex")
    assert (status, code) == (404, "unknown_stream")


def test_oversized_body(ingest: Ingest, settings: Settings) -> None:
    block = log_block(ingest.registered_stream(), ["x"])
    just_over = block + b"\0" * (settings.max_block_bytes + 1 - len(block))
    status, code, message = _refusal(ingest, "/v1/blocks", just_over)
    assert (status, code) == (413, "block_too_large")
    assert str(settings.max_block_bytes) in message
    # Far over: refused from the encoded length, before decoding it.
    status, code, _ = _refusal(ingest, "/v1/blocks", block + b"\0" * settings.max_block_bytes * 2)
    assert (status, code) == (413, "body_too_large")
    assert ingest.raw_keys() == []


def test_wrong_content_type(ingest: Ingest) -> None:
    block = log_block(ingest.registered_stream(), ["x"])
    status, code, message = _refusal(ingest, "/v1/blocks", block, content_type="text/plain")
    assert (status, code) == (415, "unsupported_media_type")
    assert "text/plain" in message
    status, code, _ = _refusal(
        ingest, "/v1/processes", process_document(), content_type="text/plain"
    )
    assert (status, code) == (415, "unsupported_media_type")


def test_missing_field_is_named(ingest: Ingest) -> None:
    document = process_document()
    del document["start_ticks"]
    status, code, message = _refusal(ingest, "/v1/processes", document)
    assert (status, code) == (400, "invalid_field")
    assert "start_ticks" in message and "missing" in message


def test_bad_layout_is_named(ingest: Ingest) -> None:
    process = process_document()
    ingest.call("/v1/processes", process)
    stream = stream_document(process["process_id"])
    stream["layout"][0]["fields"][0]["type"] = "i128"
    status, code, message = _refusal(ingest, "/v1/streams", stream)
    assert (status, code) == (400, "invalid_layout")
    assert "i128" in message and "ticks" in message


def test_stream_of_unknown_process(ingest: Ingest) -> None:
    status, code, _ = _refusal(ingest, "/v1/streams", stream_document(str(uuid.uuid4())))
    assert (status, code) == (404, "unknown_process")


def test_conflicting_registration(ingest: Ingest) -> None:
    process = process_document()
    ingest.call("/v1/processes", process)
    status, code, _ = _refusal(ingest, "/v1/processes", {**process, "exe": "/other"})
    assert (status, code) == (409, "conflict")


def test_invalid_json_and_base64(ingest: Ingest) -> None:
    event = http_event("/v1/processes", {})
    event["body"] = "{not json"
    response = ingest.handle(event, ingest.context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_json"
    event = http_event("/v1/blocks", b"")
    event["body"] = "***"
    response = ingest.handle(event, ingest.context)
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (
        400,
        "invalid_body",
    )


def test_request_without_tenant_is_refused(ingest: Ingest) -> None:
    status, code, _ = _refusal(ingest, "/v1/processes", process_document(), tenant=None)
    assert (status, code) == (401, "unauthorized")


def test_header_claims_more_payload_than_sent(ingest: Ingest) -> None:
    block = bytearray(log_block(ingest.registered_stream(), ["x"]))
    struct.pack_into("<I", block, 72, 10**6)
    status, code, message = _refusal(ingest, "/v1/blocks", bytes(block))
    assert (status, code) == (400, "invalid_block") and "truncated" in message
