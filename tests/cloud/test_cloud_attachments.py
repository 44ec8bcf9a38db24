"""Attachments on the cloud path: the ingest Lambda answers a presigned S3 PUT whose signature
binds the size, type and SHA-256; a real HTTP PUT to S3 (moto's server) stores the bytes; the
query Lambda answers a 307 to a presigned GET; the SDK does it all through the API without ever
sending its key to S3. Events as API Gateway sends them (tests/events/)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blocklake import client, sdk
from blocklake.attachments import AttachmentService
from blocklake.config import QueryLimits, Settings
from blocklake.ingest.service import IngestService
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.sdk import attachments as sdk_attachments
from blocklake.sdk.transport import DeliveryError
from blocklake.server.events import LambdaContext
from blocklake.server.http import LocalServer
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler
from tests.cloud.conftest import FAKE_CREDENTIALS, CloudLake
from tests.helpers import KEYS, aws_event


def post_event(document: dict, tenant: str = "acme") -> dict:
    event = aws_event("http_api_post_attachment.json")
    event["body"] = json.dumps(document)
    event["requestContext"]["authorizer"]["lambda"]["tenant"] = tenant
    return event


def get_event(attachment_id: str, tenant: str = "acme") -> dict:
    event = aws_event("http_api_get_attachment.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/v1/attachments/{attachment_id}"
    event["pathParameters"] = {"attachment_id": attachment_id}
    event["requestContext"]["authorizer"]["lambda"]["tenant"] = tenant
    return event


def sigv4_valid(url: str, method: str, headers: dict[str, str]) -> bool:
    """Whether a presigned URL's signature holds for a request with these headers: S3's own
    computation (SigV4, query authentication, unsigned payload), with the test credentials."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    lowered["host"] = parts.netloc
    signed = params["X-Amz-SignedHeaders"].split(";")
    quote = lambda text: urllib.parse.quote(text, safe="-_.~")  # noqa: E731
    canonical = "\n".join(
        [
            method,
            parts.path,
            "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query) if k != "X-Amz-Signature"),
            "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    date = params["X-Amz-Date"]
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, params["X-Amz-Signature"])


def test_presigned_put_binds_size_type_and_checksum_then_a_redirect_downloads(
    cloud_lake: CloudLake, context: LambdaContext
) -> None:
    blobs = cloud_lake.blob_store()
    service = AttachmentService(blobs, 5 * 1024**3)
    ingest = ingest_handler.make_handler(
        IngestService(blobs, cloud_lake.metadata, 4 * 1024 * 1024), attachments=service
    )
    data = os.urandom(200_000)
    document = {
        "attachment_id": str(uuid.uuid4()),
        "name": "frame 0042.png",
        "content_type": "image/png",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    response = ingest(post_event(document), context)
    assert response["statusCode"] == 201, response["body"]
    answer = json.loads(response["body"])
    upload = answer["upload"]
    url = upload["url"]
    assert url.startswith(f"{cloud_lake.endpoint}/{cloud_lake.bucket}/attachments/tenant%3Dacme/")
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert upload["headers"] == {
        "Content-Type": "image/png",
        "Content-Length": str(len(data)),
        "x-amz-checksum-sha256": checksum,
    }
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["X-Amz-SignedHeaders"] == "content-length;content-type;host;x-amz-checksum-sha256"
    assert int(params["X-Amz-Expires"]) == 3600
    # What S3 checks: the signature holds for the declared request only. Another size, type
    # or checksum (a swapped or grown object) is another signature: S3 answers 403.
    assert sigv4_valid(url, "PUT", upload["headers"])
    for name, value in (
        ("Content-Length", str(len(data) + 1)),
        ("Content-Type", "text/html"),
        ("x-amz-checksum-sha256", base64.b64encode(hashlib.sha256(b"x").digest()).decode()),
    ):
        assert not sigv4_valid(url, "PUT", {**upload["headers"], name: value}), name
    assert not sigv4_valid(url, "GET", upload["headers"])

    # a real HTTP PUT to S3 with exactly those headers, as the SDK sends it
    sdk_attachments.put(url, upload["headers"], iter([data[:70_000], data[70_000:]]), 10)
    key = f"attachments/tenant=acme/{document['attachment_id']}.data"
    head = cloud_lake.s3.head_object(Bucket=cloud_lake.bucket, Key=key)
    assert (head["ContentLength"], head["ContentType"]) == (len(data), "image/png")

    # declared again (the SDK's retry): uploaded, nothing to send
    again = json.loads(ingest(post_event(document), context)["body"])
    assert again["status"] == "uploaded" and "upload" not in again
    conflict = ingest(post_event({**document, "size": 1}), context)
    assert conflict["statusCode"] == 409
    too_large = ingest(post_event({**document, "size": 6 * 1024**3}), context)
    assert too_large["statusCode"] == 413
    assert "size" in json.loads(too_large["body"])["error"]["message"]

    query = query_handler.make_handler(
        DuckDbEngine(blobs, QueryLimits()), QueryLimits(), attachments=service
    )
    response = query(get_event(document["attachment_id"]), context)
    assert response["statusCode"] == 307, response["body"]
    location = response["headers"]["Location"]
    assert response["headers"]["Repr-Digest"] == f"sha-256=:{checksum}:"
    assert response["headers"]["Cache-Control"] == "no-store"
    assert (
        dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["X-Amz-Expires"]
        == "300"
    )
    with urllib.request.urlopen(location, timeout=10) as download:  # no API key: S3's own auth
        assert download.read() == data
        assert download.headers["Content-Type"] == "image/png"
        assert "filename*=UTF-8''frame%200042.png" in download.headers["Content-Disposition"]

    # another tenant: not found, whether declared by acme or never
    for tenant, attachment_id in (
        ("globex", document["attachment_id"]),
        ("acme", str(uuid.uuid4())),
    ):
        response = query(get_event(attachment_id, tenant), context)
        assert response["statusCode"] == 404
        assert json.loads(response["body"])["error"]["code"] == "unknown_attachment"


@pytest.fixture
def s3_server(cloud_lake: CloudLake, tmp_path: Path) -> Iterator[LocalServer]:
    """``blocklake serve`` with the lake on S3 (moto): uploads and downloads go to S3."""
    settings = Settings(
        data_dir=tmp_path / "lake",
        bucket=cloud_lake.bucket,
        glue_database=cloud_lake.glue_database,
        api_keys=dict(KEYS),
    )
    with LocalServer(settings, port=0) as server:
        try:
            yield server
        finally:
            sdk.shutdown(timeout=5)  # while the server still answers


def test_the_sdk_uploads_to_s3_without_its_key_and_the_client_downloads(
    s3_server: LocalServer, cloud_lake: CloudLake, tmp_path: Path, monkeypatch
) -> None:
    sent_headers = []
    real_put = sdk_attachments.put

    def recorded(url, headers, chunks, timeout):
        sent_headers.append((url, dict(headers)))
        return real_put(url, headers, chunks, timeout)

    monkeypatch.setattr(sdk_attachments, "put", recorded)
    dump = tmp_path / "core.dmp"
    dump.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    sdk.init(s3_server.url, "key-acme")
    attachment_id = sdk.attach("core.dmp", dump, "application/x-dmp")
    assert sdk.flush(timeout=60)
    assert sdk.stats()["attachments"]["uploaded"] == 1
    ((url, headers),) = sent_headers
    assert url.startswith(cloud_lake.endpoint) and "X-Amz-Signature=" in url
    assert "Authorization" not in headers  # the API key never goes to S3
    body = cloud_lake.s3.get_object(
        Bucket=cloud_lake.bucket, Key=f"attachments/tenant=acme/{attachment_id}.data"
    )["Body"].read()
    assert body == dump.read_bytes()
    s3_server.lake.wait_converted()
    (parquet,) = [
        key
        for key in s3_server.lake.blobs.list("tables/attachments/tenant=acme/")
        if key.endswith(".parquet")
    ]
    local = tmp_path / "rows.parquet"
    local.write_bytes(s3_server.lake.blobs.get(parquet))
    ((row),) = pq.read_table(local).to_pylist()
    assert (row["attachment_id"], row["size"], row["link"]) == (
        attachment_id,
        dump.stat().st_size,
        f"/v1/attachments/{attachment_id}",
    )
    got = client.connect(s3_server.url, "key-acme").download_attachment(
        attachment_id, tmp_path / "copy.dmp"
    )
    assert got.path.read_bytes() == dump.read_bytes()
    with pytest.raises(client.QueryError) as refused:
        client.connect(s3_server.url, "key-globex").download_attachment(attachment_id, tmp_path)
    assert refused.value.status == 404


def test_an_expired_upload_url_is_declared_again(
    s3_server: LocalServer, cloud_lake: CloudLake, monkeypatch
) -> None:
    """S3 answers 403 to an expired presigned URL: the SDK asks for a fresh one."""
    real_put = sdk_attachments.put
    calls = []

    def expired_once(url, headers, chunks, timeout):
        calls.append(url)
        if len(calls) == 1:
            raise DeliveryError("PUT: 403 Request has expired", kind="permanent", status=403)
        return real_put(url, headers, chunks, timeout)

    monkeypatch.setattr(sdk_attachments, "put", expired_once)
    sdk.init(s3_server.url, "key-acme")
    attachment_id = sdk.attach("log.txt", b"late upload")
    assert sdk.flush(timeout=30)
    assert len(calls) == 2 and sdk.stats()["attachments"]["uploaded"] == 1
    keys = list(s3_server.lake.blobs.list("attachments/tenant=acme/"))
    assert keys == [
        f"attachments/tenant=acme/{attachment_id}.data",
        f"attachments/tenant=acme/{attachment_id}.json",
    ]
