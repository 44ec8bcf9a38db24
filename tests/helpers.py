"""Builders of AWS-shaped events, metadata documents and blocks for the tests."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types, layout_to_json

if TYPE_CHECKING:  # pyarrow and pyiceberg are imported where used: some tests run without them
    import pyarrow as pa

    from blocklake.lake.iceberg import IcebergLake
    from blocklake.stores.blobs import LocalBlobStore

EVENTS = Path(__file__).parent / "events"
KEYS = {"key-acme": "acme", "key-globex": "globex"}


def aws_event(name: str) -> dict:
    """A sample event as AWS sends it, from tests/events/."""
    return json.loads((EVENTS / name).read_text())


def http_event(
    path: str, body: bytes | dict, *, tenant: str | None = "acme", content_type: str | None = None
) -> dict:
    """An API Gateway HTTP API v2 event for ``path`` with ``body``, as the authorizer leaves it."""
    if isinstance(body, dict):
        event = aws_event("http_api_post_json.json")
        event["body"] = json.dumps(body)
    else:
        event = aws_event("http_api_post_block.json")
        event["body"] = base64.b64encode(body).decode()
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"POST {path}"
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    if tenant is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"]["lambda"]["tenant"] = tenant
    return event


def sqs_s3_event(*keys: str) -> dict:
    """SQS messages, each an S3 ObjectCreated notification for one key (URL-encoded as S3 does)."""
    from urllib.parse import quote_plus

    template = aws_event("sqs_s3_object_created.json")["Records"][0]
    records = []
    for key in keys:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = record["body"].replace("KEY", quote_plus(key, safe="/"))
        records.append(record)
    return {"Records": records}


def process_document(**overrides: object) -> dict:
    return {
        "process_id": str(uuid.uuid4()),
        "exe": "/usr/bin/game",
        "username": "tester",
        "computer": "box",
        "start_time_ns": time.time_ns(),
        "start_ticks": 1_000,
        "tick_frequency": 1_000_000_000,
        "parent_process_id": None,
        "properties": {"version": "1.2"},
        **overrides,
    }


def stream_document(process_id: str, *names: str, **overrides: object) -> dict:
    types = event_types(1)
    return {
        "stream_id": str(uuid.uuid4()),
        "process_id": process_id,
        "tags": ["log"],
        "properties": {},
        "layout": layout_to_json([types[name] for name in names or ("log_entry",)]),
        **overrides,
    }


def log_block(
    stream_id: str,
    messages: list[str],
    *,
    first_tick: int = 2_000,
    sequence: int = 0,
    block_id: uuid.UUID | None = None,
) -> bytes:
    """A block of INFO log entries, one tick apart (a new block id unless ``block_id``)."""
    strings = StringTable()
    ticks = list(range(first_tick, first_tick + len(messages)))
    section = encode_section(
        event_types(1)["log_entry"],
        [ticks, [4] * len(messages), ["test"] * len(messages), messages, [None] * len(messages)],
        strings,
    )
    return encode_block(
        stream_id=uuid.UUID(stream_id),
        sequence=sequence,
        begin_ticks=ticks[0],
        end_ticks=ticks[-1],
        object_count=len(messages),
        sections=[section],
        strings=strings,
        block_id=block_id,
    )


def lake_for(blobs: LocalBlobStore) -> IcebergLake:
    """The local lake whose files are in ``blobs`` (its SQLite catalog beside them)."""
    from blocklake.config import Settings
    from blocklake.lake.catalog import open_lake

    return open_lake(Settings(data_dir=blobs.root), blobs)


def stored_rows(blobs: LocalBlobStore, table: str, tenant: str = "acme") -> pa.Table:
    """The rows a lake table holds, read from its Iceberg table once what conversions staged is
    committed (empty when the table does not exist)."""
    from blocklake.format.tables import arrow_schema

    lake = lake_for(blobs)
    lake.commit_pending()
    iceberg = lake.load(table, tenant)
    if iceberg is None:
        return arrow_schema(table).empty_table()
    return iceberg.scan().to_arrow()
