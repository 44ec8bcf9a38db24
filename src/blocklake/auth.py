"""API keys to tenants. Keys are compared as SHA-256 digests, so a key list holds no secrets."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def tenant_for_key(api_key: str | None, digests: Mapping[str, str]) -> str | None:
    """The tenant whose key this is, from ``{sha256 hex digest: tenant}``; None if unknown."""
    if not api_key:
        return None
    digest = key_digest(api_key)
    for known, tenant in digests.items():
        if hmac.compare_digest(known, digest):
            return tenant
    return None


def api_key_from_headers(headers: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (header names in lower case)."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return headers.get("x-api-key")
