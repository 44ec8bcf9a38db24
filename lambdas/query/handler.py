"""Query Lambda: POST /v1/query {sql, begin, end, format, max_rows} (API Gateway HTTP API, v2)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from blocklake.apigw import error_response, json_body, json_response, tenant_of
from blocklake.config import Settings
from blocklake.errors import ClientError
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryEngine
from blocklake.query.service import FORMATS, request_from, to_bytes, to_json
from blocklake.stores import factory

logger = Logger(service="blocklake-query")
MAX_REQUEST_BYTES = 256 * 1024


def make_handler(engine: QueryEngine, max_rows: int) -> Callable[[dict, object], dict]:
    app = APIGatewayHttpResolver()

    @app.post("/v1/query")
    def query() -> Response:
        event = app.current_event
        request, output = request_from(
            json_body(event, MAX_REQUEST_BYTES), tenant_of(event), max_rows
        )
        result = engine.run(request)
        logger.info("query ran", extra={"rows": result.table.num_rows, "truncated": result.truncated})
        if output == "json":
            return json_response(200, to_json(result))
        return Response(200, FORMATS[output], to_bytes(result, output))

    @app.exception_handler(ClientError)
    def client_error(error: ClientError) -> Response:
        logger.info("query refused", extra={"code": error.code, "reason": error.message})
        return error_response(error)

    @logger.inject_lambda_context
    def handle(event: dict, context: object) -> dict:
        return app.resolve(event, context)

    return handle


@functools.cache
def _configured() -> Callable[[dict, object], dict]:
    settings = Settings.from_env()
    return make_handler(DuckDbEngine(factory.blob_store(settings)), settings.query_max_rows)


def handler(event: dict, context: object) -> dict:
    """The Lambda entry point, configured from the environment at the first call."""
    return _configured()(event, context)
