"""Ingest Lambda: POST /v1/processes, /v1/streams, /v1/blocks, /v1/attachments (API Gateway HTTP
API, payload v2).

Metrics (namespace ``blocklake``, off when not on Lambda: ``blocklake.observability``):
``BlocksStored``, ``DuplicateBlocks`` (a retried upload), ``BytesStored``, ``RequestsRefused``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from blocklake.apigw import (
    body_bytes,
    error_response,
    json_body,
    json_response,
    require_content_type,
    tenant_of,
)
from blocklake.attachments import PATH as ATTACHMENTS_PATH
from blocklake.attachments import AttachmentService
from blocklake.config import Settings
from blocklake.errors import ClientError
from blocklake.format.header import CONTENT_TYPE as BLOCK_CONTENT_TYPE
from blocklake.ingest.service import IngestService
from blocklake.observability import MetricsSink, MetricUnit, metrics_for, observed, tracer_for
from blocklake.stores import factory

SERVICE = "blocklake-ingest"
logger = Logger(service=SERVICE)
metrics = metrics_for(SERVICE)
tracer = tracer_for(SERVICE)


def _registered(created: bool, limits: dict) -> Response:
    """201 the first time, 200 for a retry: registration is idempotent. ``limits`` tells the
    SDK how large a block may be before it sends one."""
    status = "created" if created else "exists"
    return json_response(201 if created else 200, {"status": status, "limits": limits})


def make_resolver(
    service: IngestService,
    metrics: MetricsSink = metrics,
    attachments: AttachmentService | None = None,
) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()
    limit = service.max_block_bytes
    limits = {"max_block_bytes": limit}

    @app.post("/v1/processes")
    def register_process() -> Response:
        event = app.current_event
        created = service.register_process(tenant_of(event), json_body(event, limit))
        return _registered(created, limits)

    @app.post("/v1/streams")
    def register_stream() -> Response:
        event = app.current_event
        created = service.register_stream(tenant_of(event), json_body(event, limit))
        return _registered(created, limits)

    @app.post("/v1/blocks")
    def upload_block() -> Response:
        event = app.current_event
        tenant = tenant_of(event)
        require_content_type(event, BLOCK_CONTENT_TYPE, "application/octet-stream")
        data = body_bytes(event, limit)
        tracer.put_annotation("tenant", tenant)
        stored = service.store_block(tenant, data)
        if stored.duplicate:
            metrics.add_metric("DuplicateBlocks", MetricUnit.Count, 1)
        else:
            metrics.add_metric("BlocksStored", MetricUnit.Count, 1)
            metrics.add_metric("BytesStored", MetricUnit.Bytes, len(data))
        logger.debug(
            "block stored", extra={"key": stored.object_key, "duplicate": stored.duplicate}
        )
        return json_response(
            200 if stored.duplicate else 201,
            {
                "status": "duplicate" if stored.duplicate else "stored",
                "block_id": stored.block_id,
                "limits": limits,
            },
        )

    if attachments is not None:

        @app.post(ATTACHMENTS_PATH)
        def declare_attachment() -> Response:
            """The upload URL of an attachment (a presigned S3 PUT), idempotent per id."""
            event = app.current_event
            try:
                status, answer = attachments.declare(tenant_of(event), json_body(event, 64 * 1024))
            except ClientError as error:
                if error.status != 413:
                    raise
                metrics.add_metric("RequestsRefused", MetricUnit.Count, 1)
                return json_response(413, {**error.to_json(), "limits": attachments.limits})
            if status == 201:
                metrics.add_metric("AttachmentsDeclared", MetricUnit.Count, 1)
            return json_response(status, answer)

    @app.exception_handler(ClientError)
    def client_error(error: ClientError) -> Response:
        logger.info("request refused", extra={"code": error.code, "reason": error.message})
        metrics.add_metric("RequestsRefused", MetricUnit.Count, 1)
        if error.status == 413:  # tells the SDK how large a block may be
            return json_response(413, {**error.to_json(), "limits": limits})
        return error_response(error)

    @app.exception_handler(Exception)
    def server_error(error: Exception) -> Response:
        """A JSON 500 whatever failed (the database, say), never a traceback; the client
        retries, and a retry completes what the first attempt left undone."""
        logger.exception("request failed")
        return json_response(
            500,
            {"error": {"code": "internal_error", "message": "the request failed; retry it"}},
        )

    return app


def make_handler(
    service: IngestService,
    *,
    metrics: MetricsSink = metrics,
    attachments: AttachmentService | None = None,
) -> Callable[[dict, object], dict]:
    resolver = make_resolver(service, metrics, attachments)

    def handle(event: dict, context: object) -> dict:
        return resolver.resolve(event, context)

    return observed(handle, logger, metrics, tracer)


@functools.cache
def _configured() -> Callable[[dict, object], dict]:
    settings = Settings.from_env()
    blobs = factory.blob_store(settings)
    return make_handler(
        IngestService(blobs, factory.metadata_store(settings), settings.max_block_bytes),
        attachments=AttachmentService(blobs, settings.max_attachment_bytes),
    )


def handler(event: dict, context: object) -> dict:
    """The Lambda entry point, configured from the environment at the first call."""
    return _configured()(event, context)
