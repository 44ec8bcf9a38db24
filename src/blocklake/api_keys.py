"""API keys of a deployed blocklake: created into the stack's Secrets Manager secret
(``ApiKeysSecretArn``), which maps the SHA-256 digest of each key to its tenant.

Only the digest is stored; the key itself is shown once, to whoever created it. The authorizer
caches the map for five minutes, so a new key works within that time.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from blocklake.auth import key_digest
from blocklake.stores.layout import TENANT_PATTERN


def secret_region(secret_arn: str) -> str | None:
    """The region named in a Secrets Manager ARN (``arn:aws:secretsmanager:<region>:...``), so
    the command works whatever the profile's default region; None for a bare name."""
    parts = secret_arn.split(":")
    if len(parts) > 3 and parts[0] == "arn":
        return parts[3] or None
    return None


def create_api_key(secretsmanager: Any, secret_arn: str, tenant: str) -> str:
    """Adds a new random key for ``tenant`` (``TENANT_PATTERN``) to the secret; returns the key.

    ``secretsmanager`` is a boto3 client. ``ValueError`` names a malformed tenant or a secret
    that is not a JSON object; boto3's errors (no such secret, no permission) propagate.
    """
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(
            f"tenant {tenant!r}: lower-case letters, digits, '-' and '_', starting with a letter "
            "or digit, at most 63 characters"
        )
    current = secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
    digests = json.loads(current or "{}")
    if not isinstance(digests, dict):
        raise ValueError(f"{secret_arn}: expected a JSON object of digest to tenant")
    key = secrets.token_urlsafe(32)
    digests[key_digest(key)] = tenant
    secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(digests))
    return key
