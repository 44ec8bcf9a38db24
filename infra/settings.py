"""Deployment choices read from CDK context (``cdk.json`` or ``cdk deploy -c key=value``).

Everything an operator may want to change without editing code lives here, validated at synth
time so that a bad value fails before CloudFormation sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from constructs import Construct

CONTEXT_PREFIX = "blocklake:"


@dataclass(frozen=True)
class Retention:
    """Days before S3 expires raw blocks and table files; None keeps them forever."""

    raw_days: int | None
    tables_days: int | None


@dataclass(frozen=True)
class StackSettings:
    retention: Retention = Retention(raw_days=30, tables_days=400)
    tenant_retention: Mapping[str, Retention] = field(default_factory=dict)
    """Per-tenant overrides, applied to ``raw/tenant=T/`` and ``tables/*/tenant=T/``."""
    athena_bytes_scanned_per_query: int = 10 * 1024**3
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)
    """Per function (``ingest``, ``etl``, ``query``): caps cost and database load. None by
    default: Lambda refuses a reservation that leaves fewer than 100 unreserved executions (10
    in a new account whose quota is 10), so a first deploy must not depend on the quota."""
    database_max_capacity: float = 4
    alarm_email: str | None = None

    def __post_init__(self) -> None:
        for tenant, retention in self.tenant_retention.items():
            for kind in ("raw_days", "tables_days"):
                own, default = getattr(retention, kind), getattr(self.retention, kind)
                if default is not None and (own is None or own > default):
                    raise ValueError(
                        f"retention for tenant {tenant!r}: {kind}={own} is longer than the "
                        f"default {default}; S3 applies the shortest of overlapping expiration "
                        "rules, so a tenant can only keep data for less time than the default"
                    )

    @classmethod
    def from_context(cls, scope: Construct) -> StackSettings:
        defaults = cls()

        def value(name: str, default: object) -> object:
            found = scope.node.try_get_context(CONTEXT_PREFIX + name)
            # ``-c key=value`` on the command line arrives as a string; cdk.json as JSON.
            if isinstance(found, str) and not isinstance(default, str | None):
                return json.loads(found)
            return default if found is None else found

        retention = value("retention", {})
        tenants = retention.get("tenants", {})
        default_retention = _retention(retention, defaults.retention)
        email = value("alarm_email", None)
        return cls(
            retention=default_retention,
            tenant_retention={
                name: _retention(doc, default_retention) for name, doc in tenants.items()
            },
            athena_bytes_scanned_per_query=int(
                value("athena_bytes_scanned_per_query", defaults.athena_bytes_scanned_per_query)
            ),
            reserved_concurrency=dict(value("reserved_concurrency", defaults.reserved_concurrency)),
            database_max_capacity=float(
                value("database_max_capacity", defaults.database_max_capacity)
            ),
            alarm_email=str(email) if email else None,
        )


def _retention(doc: Mapping[str, int | None], fallback: Retention) -> Retention:
    return Retention(
        raw_days=doc.get("raw_days", fallback.raw_days),
        tables_days=doc.get("tables_days", fallback.tables_days),
    )
