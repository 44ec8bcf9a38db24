"""Checks the API key of each request against the digests in Secrets Manager.

Payload format 2.0 with simple responses: ``{"isAuthorized": bool, "context": {"tenant": ...}}``;
the handlers read the tenant from ``requestContext.authorizer.lambda.tenant``. The key map is
cached for a few minutes per execution environment, so a warm authorizer answers without a call
to Secrets Manager, and a revoked key stops working within the TTL.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

from blocklake.auth import api_key_from_headers, tenant_for_key

CACHE_TTL_SECONDS = 300.0

_cache: dict[str, tuple[float, dict[str, str]]] = {}


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    tenant = tenant_for_key(api_key_from_headers(headers), _digests())
    if tenant is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"tenant": tenant}}


def _digests() -> dict[str, str]:
    secret_arn = os.environ["BLOCKLAKE_API_KEYS_SECRET_ARN"]
    cached = _cache.get(secret_arn)
    if cached and time.monotonic() - cached[0] < CACHE_TTL_SECONDS:
        return cached[1]
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    digests = json.loads(secret["SecretString"])
    if not isinstance(digests, dict):
        raise ValueError('the API keys secret must be a JSON object {"<sha256 hex>": "<tenant>"}')
    _cache[secret_arn] = (time.monotonic(), digests)
    return digests
