"""API Gateway HTTP API (payload v2) plumbing shared by the ingest and query handlers."""

from __future__ import annotations

import base64
import binascii
import json

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from blocklake.errors import ClientError
from blocklake.stores.layout import TENANT_PATTERN


def tenant_of(event: APIGatewayProxyEventV2) -> str:
    """The tenant the authorizer resolved from the API key; requests never name it themselves."""
    context = event.request_context.authorizer.get_lambda or {}
    tenant = context.get("tenant")
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise ClientError(401, "unauthorized", "no tenant for this request: check the API key")
    return tenant


def body_bytes(event: APIGatewayProxyEventV2, max_bytes: int) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        if len(body) * 3 // 4 > max_bytes + 3:  # refuse before decoding a huge body
            raise ClientError(413, "body_too_large", f"request body is over {max_bytes} bytes")
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise ClientError(400, "invalid_body", "body is not valid base64") from None
    return body.encode("utf-8")


def require_content_type(event: APIGatewayProxyEventV2, *expected: str) -> None:
    given = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if given not in expected:
        raise ClientError(
            415,
            "unsupported_media_type",
            f"content type {given or '(none)'!r}; expected {' or '.join(expected)}",
        )


def json_body(event: APIGatewayProxyEventV2, max_bytes: int) -> dict:
    require_content_type(event, "application/json")
    try:
        document = json.loads(body_bytes(event, max_bytes))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ClientError(400, "invalid_json", f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise ClientError(400, "invalid_json", "body is nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise ClientError(400, "invalid_json", f"body has an unreadable value: {error}") from None
    if not isinstance(document, dict):
        raise ClientError(400, "invalid_json", "body must be a JSON object")
    return document


def json_response(status: int, document: dict) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(document))


def error_response(error: ClientError) -> Response:
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=json.dumps(error.to_json()),
        headers=error.headers,
    )
