"""Each tenant's S3 credentials for DuckDB: STS AssumeRole with a session policy on that tenant's
table prefixes, cached until shortly before they expire (STS served by a recording fake: moto's
STS accepts any policy and enforces none)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from blocklake.format.schema import tables
from blocklake.query import duckdb_s3
from blocklake.query.duckdb_s3 import TenantReaderCredentials, tenant_read_policy

ROLE = "arn:aws:iam::123456789012:role/reader"


class RecordingSts:
    def __init__(self, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.calls: list[dict] = []
        self.lifetime = lifetime

    def assume_role(self, **kwargs: object) -> dict:
        self.calls.append(kwargs)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{len(self.calls)}",
                "SecretAccessKey": "s",
                "SessionToken": "t",
                "Expiration": datetime.now(UTC) + self.lifetime,
            }
        }


def test_the_session_policy_reaches_only_the_tenants_table_prefixes() -> None:
    policy = tenant_read_policy("lake", "acme")
    get, listing = policy["Statement"]
    assert get == {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": ["arn:aws:s3:::lake/tables/*/tenant=acme/*"],
    }
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == "arn:aws:s3:::lake"
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["tables/*/tenant=acme/*"]
    # The pattern as IAM matches it (* spans anything, / included) against the keys the ETL
    # writes: every table's files of this tenant, no other tenant's, nothing outside tables/.
    pattern = re.compile(re.escape("tables/*/tenant=acme/*").replace(r"\*", ".*"))

    def keys(table: str, tenant: str) -> list[str]:  # an Iceberg table's (blocklake.lake)
        location = f"tables/{table}/tenant={tenant}"
        return [f"{location}/metadata/00001-x.metadata.json", f"{location}/data/h=1/f.parquet"]

    for table in [*tables(), "events_checkout_v2"]:
        assert all(pattern.fullmatch(key) for key in keys(table, "acme"))
        for other in ("acme2", "acm", "globex"):
            assert not any(pattern.fullmatch(key) for key in keys(table, other))
    assert not pattern.fullmatch("raw/tenant=acme/date=1970-01-01/hour=00/s/b.blk")
    assert not pattern.fullmatch("attachments/tenant=acme/x.data")
    # The size STS allows for a session policy, whatever the number of tables.
    assert len(json.dumps(tenant_read_policy("lake", "t" * 63))) < 2048


def test_credentials_are_assumed_per_tenant_and_cached() -> None:
    sts = RecordingSts()
    credentials = TenantReaderCredentials(sts, ROLE, "lake")
    acme, again, globex = credentials("acme"), credentials("acme"), credentials("globex")
    assert acme == again and acme.key_id != globex.key_id
    assert [call["RoleSessionName"] for call in sts.calls] == [
        "blocklake-query-acme",
        "blocklake-query-globex",
    ]
    for call, tenant in zip(sts.calls, ("acme", "globex"), strict=True):
        assert call["RoleArn"] == ROLE
        assert json.loads(call["Policy"]) == tenant_read_policy("lake", tenant)


def test_credentials_near_their_end_are_renewed() -> None:
    sts = RecordingSts(lifetime=timedelta(seconds=duckdb_s3.RENEW_BEFORE_S - 1))
    credentials = TenantReaderCredentials(sts, ROLE, "lake")
    assert credentials("acme").key_id == "ASIA1"
    assert credentials("acme").key_id == "ASIA2"
