"""SDK → ingest λ → S3 (moto) → S3 notification → SQS (moto) → ETL λ → Parquet on S3 → query λ
with DuckDB's httpfs over S3: every recorded event comes back exactly once, and a retried upload,
a redelivered SQS message and a re-run ETL add no row.

The handlers are called as Lambda calls them (moto's Lambda needs Docker): a small HTTP server
plays API Gateway plus the authorizer, and the test plays the SQS event source mapping.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blocklake import sdk
from blocklake.auth import api_key_from_headers
from blocklake.cli import post_query
from blocklake.config import QueryLimits
from blocklake.format.header import parse_header
from blocklake.ingest.service import IngestService
from blocklake.server.events import LambdaContext, http_api_event
from lambdas.etl import handler as etl_handler
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler
from tests.cloud.conftest import CloudLake
from tests.exactly_once import check_every_event_once, record_workload
from tests.helpers import KEYS, sqs_s3_event

API_KEY = next(iter(KEYS))


class ApiGateway:
    """HTTP in front of the ingest and query handlers, as API Gateway + the authorizer are."""

    def __init__(self, handlers: dict[str, object]) -> None:
        self.handlers = handlers
        self.requests: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.blocks: list[bytes] = []
        self.streams: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, data = gateway.call(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def call(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        lowered = {name.lower(): value for name, value in headers.items()}
        tenant = KEYS.get(api_key_from_headers(lowered) or "")
        if tenant is None:
            return 401, {}, b'{"message":"Unauthorized"}'
        with self.lock:
            self.requests[path] += 1
            if path == "/v1/blocks":
                self.blocks.append(body)
            if path == "/v1/streams":
                document = json.loads(body)
                self.streams[document["stream_id"]] = document["tags"]
        event = http_api_event(
            method="POST",
            path=path,
            query="",
            headers=lowered,
            body=body,
            source_ip="127.0.0.1",
            authorizer={"tenant": tenant},
        )
        target = "query" if path == "/v1/query" else "ingest"
        started = time.perf_counter()
        response = self.handlers[target](event, LambdaContext(f"blocklake-{target}"))
        with self.lock:
            self.seconds[path] += time.perf_counter() - started
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        return response["statusCode"], dict(response.get("headers") or {}), data

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _drain(lake: CloudLake, etl, raw_keys: set[str], redeliver_one: bool) -> dict:
    """Plays the SQS event source mapping until every raw block was announced and converted.
    With ``redeliver_one``, the first message is left undeleted once (a lost delete), so that
    SQS delivers it again."""
    stats = {"invocations": 0, "messages": 0, "test_events": 0, "redelivered": 0}
    announced: Counter[str] = Counter()
    redelivery_pending = redeliver_one
    deadline = time.monotonic() + 30
    while set(announced) != raw_keys or redelivery_pending:
        assert time.monotonic() < deadline, f"{len(raw_keys - set(announced))} blocks not announced"
        messages = lake.receive(wait_s=1)
        if not messages:
            continue
        result = etl(lake.lambda_event(messages), LambdaContext("blocklake-etl"))
        assert result == {"batchItemFailures": []}
        stats["invocations"] += 1
        for message in messages:
            keys = etl_handler.created_keys(message["Body"])
            if not keys:
                assert json.loads(message["Body"]).get("Event") == "s3:TestEvent"
                stats["test_events"] += 1
            announced.update(keys)
            stats["messages"] += 1
            if int(message["Attributes"]["ApproximateReceiveCount"]) > 1:
                stats["redelivered"] += 1
                redelivery_pending = False
        if redeliver_one and stats["invocations"] == 1:
            kept, messages = messages[0], messages[1:]
            lake.sqs.change_message_visibility(
                QueueUrl=lake.queue_url, ReceiptHandle=kept["ReceiptHandle"], VisibilityTimeout=0
            )
        lake.settle(messages, {"batchItemFailures": []})
    assert set(announced) == raw_keys
    return stats


def test_the_cloud_path_returns_every_event_exactly_once(cloud_lake: CloudLake) -> None:
    ingest_blobs, etl_blobs = cloud_lake.blob_store(), cloud_lake.blob_store()
    ingest = ingest_handler.make_handler(
        IngestService(ingest_blobs, cloud_lake.metadata, 4 * 1024 * 1024)
    )
    etl = etl_handler.make_handler(cloud_lake.converter(etl_blobs))
    engine = cloud_lake.query_engine(QueryLimits(max_rows=100_000))
    assert any(s.startswith("LOAD ") for s in engine.connection_setup("acme"))  # httpfs
    query = query_handler.make_handler(engine, engine.limits)
    gateway = ApiGateway({"ingest": ingest, "query": query})
    try:
        _run(cloud_lake, gateway, etl, ingest_blobs, etl_blobs)
    finally:
        sdk.shutdown()
        gateway.close()


def _run(lake: CloudLake, gateway: ApiGateway, etl, ingest_blobs, etl_blobs) -> None:
    ingest_calls = len(lake.shim.calls)
    sdk.init(gateway.url, API_KEY, flush_at=97)
    record_workload()
    sdk.info("sent twice", target="retry")
    post_block = sdk._flusher.uploader.transport.post_block
    retried: list[bytes] = []

    def post_twice(data: bytes) -> dict:
        retried.append(data)
        post_block(data)  # as if the first response was lost and the client retried
        return post_block(data)

    sdk._flusher.uploader.transport.post_block = post_twice
    assert sdk.flush()
    # sdk.stats(), not recording.logs.dropped: the flusher resets that as it counts the drops
    assert retried and not any(sdk.stats()["dropped"].values())
    data_api_ingest = len(lake.shim.calls) - ingest_calls

    raw_keys = set(lake_keys(lake, "raw/"))
    unique_blocks = {bytes(block) for block in gateway.blocks}
    assert len(raw_keys) == len(unique_blocks) == len(gateway.blocks) - len(retried)
    assert ingest_blobs.puts == len(gateway.blocks)  # the retry was refused by S3 itself

    stats = _drain(lake, etl, raw_keys, redeliver_one=True)
    assert stats["test_events"] >= 1 and stats["redelivered"] >= 1  # moto may send 2 tests
    assert lake.dead_letters() == []
    committer = lake.lake()
    assert committer.commit_pending().commits >= 1  # the committer's run: rows become visible
    tables_after_first = {key: lake.s3.head_object(Bucket=lake.bucket, Key=key)["ETag"]
                          for key in lake_keys(lake, "tables/")}  # fmt: skip

    # The whole ETL again, as if every notification had been delivered twice: same files.
    # Per-block request counts are taken from this run: it converts each block exactly once.
    before_calls, before_puts = len(lake.shim.calls), etl_blobs.puts
    before_gets, before_heads = etl_blobs.gets, etl_blobs.heads
    started = time.perf_counter()
    for keys in _batches(sorted(raw_keys), 10):
        rerun = sqs_s3_event(*keys)
        assert etl(rerun, LambdaContext("blocklake-etl")) == {"batchItemFailures": []}
    etl_seconds = time.perf_counter() - started
    etl_requests = {
        "data_api": len(lake.shim.calls) - before_calls,
        "s3_put": etl_blobs.puts - before_puts,
        "s3_get": etl_blobs.gets - before_gets,
        "s3_head": etl_blobs.heads - before_heads,
    }
    assert set(lake_keys(lake, "tables/")) == set(tables_after_first)
    assert committer.commit_pending().commits == 0  # the second run staged nothing

    _check_rows(gateway)
    _report_costs(gateway, stats, raw_keys, data_api_ingest, etl_requests, etl_seconds)


def lake_keys(lake: CloudLake, prefix: str) -> list[str]:
    pages = lake.s3.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _query(gateway: ApiGateway, sql: str) -> list[list]:
    now = time.time_ns()
    document = {"sql": sql, "begin": now - 3600 * 10**9, "end": now + 60 * 10**9}
    result = post_query(gateway.url, API_KEY, document)
    assert not result["truncated"]
    return result["rows"]


def _check_rows(gateway: ApiGateway) -> None:
    check_every_event_once(lambda sql: _query(gateway, sql))
    assert _query(gateway, "SELECT count(*) FROM log_entries WHERE target = 'retry'") == [[1]]
    blocks = _query(gateway, "SELECT count(*), count(DISTINCT block_id) FROM blocks")
    assert blocks[0][0] == blocks[0][1] == len(set(gateway.blocks))


def _report_costs(
    gateway: ApiGateway,
    stats: dict,
    raw_keys: set[str],
    data_api_ingest: int,
    etl_requests: dict[str, int],
    etl_seconds: float,
) -> None:
    """Measured figures for docs/costs.md (printed; shown with ``pytest -s``)."""
    by_kind: dict[str, list[int]] = {}
    for block in set(gateway.blocks):
        header = parse_header(block)
        tags = gateway.streams[str(header.stream_id)]
        kind = "spans" if "cpu" in tags else "metrics" if "metrics" in tags else "logs"
        events, size = by_kind.setdefault(kind, [0, 0, 0]), len(block)
        events[0] += header.object_count
        events[1] += size
        events[2] += 1
    blocks = len(raw_keys)
    figures = {
        kind: {"events": e, "bytes": b, "blocks": n, "bytes_per_event": round(b / e, 2)}
        for kind, (e, b, n) in by_kind.items()
    }
    figures["requests_per_block"] = {
        "data_api_ingest": round(data_api_ingest / blocks, 2),
        **{f"etl_{name}": round(count / blocks, 2) for name, count in etl_requests.items()},
        "sqs_messages": round(stats["messages"] / blocks, 2),
        "ingest_requests": dict(gateway.requests),
        "ingest_ms_per_block_here": round(
            1000 * gateway.seconds["/v1/blocks"] / gateway.requests["/v1/blocks"], 1
        ),
        "etl_ms_per_block_here": round(1000 * etl_seconds / blocks, 1),
    }
    print("\nCLOUD_COSTS " + json.dumps(figures))
    assert all(f["bytes_per_event"] > 0 for k, f in figures.items() if k != "requests_per_block")


@pytest.fixture(autouse=True)
def _no_sdk_left_running():
    yield
    sdk.shutdown()
