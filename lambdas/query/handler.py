"""Query Lambda: POST /v1/query {sql, begin, end, format, max_rows, engine, dry_run}, and
GET /v1/attachments/{attachment_id}: a 307 to a short-lived presigned GET of the tenant's
attachment (API Gateway HTTP API, v2).

Every answer is JSON with a status that says whose fault an error was (4xx the query's, 5xx the
service's), including for failures nobody foresaw: those are logged and answered 500 without
details.

Metrics (namespace ``blocklake``, off when not on Lambda: ``blocklake.observability``):
``QueriesRun``, ``RowsReturned``, ``QueryErrors`` (refused or failed queries).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from blocklake.apigw import error_response, json_body, tenant_of
from blocklake.attachments import PATH as ATTACHMENTS_PATH
from blocklake.attachments import AttachmentService
from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.observability import MetricsSink, MetricUnit, metrics_for, observed, tracer_for
from blocklake.query.admission import TenantSlots
from blocklake.query.budget import DailyBudget
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryEngine
from blocklake.query.service import TRUNCATED_HEADER, QueryService
from blocklake.stores import factory

SERVICE = "blocklake-query"
logger = Logger(service=SERVICE)
metrics = metrics_for(SERVICE)
tracer = tracer_for(SERVICE)
MAX_REQUEST_BYTES = 256 * 1024


def make_handler(
    engine: DuckDbEngine,
    limits: QueryLimits,
    *,
    metrics: MetricsSink = metrics,
    athena: QueryEngine | None = None,
    budget: DailyBudget | None = None,
    attachments: AttachmentService | None = None,
) -> Callable[[dict, object], dict]:
    service = QueryService(engine, limits, athena, budget)
    slots = TenantSlots(limits.concurrency)
    app = APIGatewayHttpResolver()

    @app.post("/v1/query")
    def query() -> Response:
        event = app.current_event
        tenant = tenant_of(event)
        document = json_body(event, MAX_REQUEST_BYTES)
        tracer.put_annotation("tenant", tenant)
        with slots.taken(tenant), tracer.subsegment("run_query"):
            body, headers, rows = service.answer(document, tenant)
        metrics.add_metric("QueriesRun", MetricUnit.Count, 1)
        metrics.add_metric("RowsReturned", MetricUnit.Count, rows)
        logger.info("query ran", extra={"rows": rows, "cut": headers.get(TRUNCATED_HEADER)})
        content_type = headers.pop("Content-Type")
        return Response(200, content_type, body, headers=headers)

    if attachments is not None:

        @app.get(f"{ATTACHMENTS_PATH}/<attachment_id>")
        def download_attachment(attachment_id: str) -> Response:
            """A redirect to the bytes: a Lambda answers at most 6 MB, S3 any size."""
            declared, url = attachments.download_url(tenant_of(app.current_event), attachment_id)
            metrics.add_metric("AttachmentsDownloaded", MetricUnit.Count, 1)
            return Response(
                307,
                "application/json",
                json.dumps({"attachment_id": declared.attachment_id, "url": url}),
                headers={
                    "Location": url,
                    "Cache-Control": "no-store",  # the URL expires
                    "Repr-Digest": declared.download_headers()["Repr-Digest"],
                },
            )

    @app.exception_handler(ClientError)
    def client_error(error: ClientError) -> Response:
        logger.info("query refused", extra={"code": error.code, "reason": error.message})
        metrics.add_metric("QueryErrors", MetricUnit.Count, 1)
        return error_response(error)

    @app.exception_handler(Exception)
    def internal_error(error: Exception) -> Response:
        logger.exception("query failed")
        metrics.add_metric("QueryErrors", MetricUnit.Count, 1)
        return error_response(ClientError(500, "internal_error", "the query service failed"))

    def handle(event: dict, context: object) -> dict:
        return app.resolve(event, context)

    return observed(handle, logger, metrics, tracer)


@functools.cache
def _configured() -> Callable[[dict, object], dict]:
    settings = Settings.from_env()
    blobs = factory.blob_store(settings)
    athena = None
    if settings.athena_workgroup and settings.glue_database:
        import pyathena  # the aws extra's, as sqlglot is: imported only where Athena runs

        from blocklake.query.athena_engine import AthenaEngine

        workgroup, database = settings.athena_workgroup, settings.glue_database
        athena = AthenaEngine(
            lambda: pyathena.connect(work_group=workgroup, schema_name=database),
            database,
            workgroup,
            settings.query,
        )
    return make_handler(
        DuckDbEngine.for_settings(settings, blobs),
        settings.query,
        athena=athena,
        budget=DailyBudget(blobs, settings.query),
        attachments=AttachmentService(blobs, settings.max_attachment_bytes),
    )


def handler(event: dict, context: object) -> dict:
    """The Lambda entry point, configured from the environment at the first call."""
    return _configured()(event, context)
