"""A local lake with rows of two tenants, and the query handler in front of it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from blocklake.config import Settings
from blocklake.server.lake import LocalLake
from tests.helpers import http_event, log_block, process_document, stream_document

T0 = int(datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp()) * 10**9
HOUR = 3600 * 10**9


class QueryLake:
    """A local lake holding one log entry per hour offset, each in its own block."""

    def __init__(self, settings: Settings, context: object, lake: LocalLake | None = None) -> None:
        self.lake = lake or LocalLake(settings)
        self.context = context
        self.ingest = self.lake.handlers["ingest"]

    def record(self, tenant: str, offsets_h: list[float], prefix: str = "at") -> None:
        process = process_document(start_time_ns=T0, start_ticks=0)
        stream = stream_document(process["process_id"])
        for path, document in (("/v1/processes", process), ("/v1/streams", stream)):
            assert (
                self.ingest(http_event(path, document, tenant=tenant), self.context)["statusCode"]
                == 201
            )
        for sequence, offset in enumerate(offsets_h):
            block = log_block(
                stream["stream_id"],
                [f"{prefix} {offset}h"],
                first_tick=int(offset * HOUR),
                sequence=sequence,
            )
            assert (
                self.ingest(http_event("/v1/blocks", block, tenant=tenant), self.context)[
                    "statusCode"
                ]
                == 201
            )
        self.lake.wait_converted()

    def response(self, document: dict, tenant: str = "acme") -> dict:
        """The query handler's API Gateway response to ``document``."""
        return self.lake.handlers["query"](
            http_event("/v1/query", document, tenant=tenant), self.context
        )

    def query(self, document: dict, tenant: str = "acme") -> tuple[int, dict | bytes]:
        response = self.response(document, tenant)
        body = response["body"]
        if response.get("isBase64Encoded"):
            return response["statusCode"], base64.b64decode(body)
        return response["statusCode"], json.loads(body)


@pytest.fixture
def lake(settings: Settings, context: object):
    query_lake = QueryLake(settings, context)
    yield query_lake
    query_lake.lake.close()


def window(begin_h: float, end_h: float, sql: str, **extra: object) -> dict:
    return {"sql": sql, "begin": T0 + int(begin_h * HOUR), "end": T0 + int(end_h * HOUR), **extra}
