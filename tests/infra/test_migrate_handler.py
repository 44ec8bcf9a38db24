"""The migrate custom resource, with a SQLite executor standing in for the Data API."""

from __future__ import annotations

import sys
import types

import pytest

from blocklake.stores.sql import SqliteExecutor
from lambdas.migrate import handler as migrate

PROPERTIES = {
    "ClusterArn": "arn:aws:rds:eu-west-1:123456789012:cluster:blocklake",
    "SecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db",
    "Database": "blocklake",
    "MigrationsHash": "abc",
}


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> SqliteExecutor:
    database = SqliteExecutor(":memory:")
    calls = []

    def data_api_executor(**kwargs: str) -> SqliteExecutor:
        calls.append(kwargs)
        return database

    fake = types.ModuleType("blocklake.stores.data_api")
    fake.DataApiExecutor = data_api_executor
    monkeypatch.setitem(sys.modules, "blocklake.stores.data_api", fake)
    database.calls = calls
    return database


def test_create_applies_every_migration_through_the_data_api(executor) -> None:
    response = migrate.handler({"RequestType": "Create", "ResourceProperties": PROPERTIES}, None)

    assert executor.calls == [
        {
            "cluster_arn": PROPERTIES["ClusterArn"],
            "secret_arn": PROPERTIES["SecretArn"],
            "database": "blocklake",
        }
    ]
    assert response["Data"]["Applied"].startswith("1")
    assert executor.query("SELECT count(*) AS n FROM blocks") == [{"n": 0}]


def test_update_keeps_the_physical_id_and_applies_nothing_twice(executor) -> None:
    created = migrate.handler({"RequestType": "Create", "ResourceProperties": PROPERTIES}, None)
    updated = migrate.handler(
        {
            "RequestType": "Update",
            "PhysicalResourceId": created["PhysicalResourceId"],
            "ResourceProperties": {**PROPERTIES, "MigrationsHash": "def"},
        },
        None,
    )
    assert updated == {"PhysicalResourceId": created["PhysicalResourceId"], "Data": {"Applied": ""}}


def test_delete_touches_no_database(executor) -> None:
    event = {"RequestType": "Delete", "PhysicalResourceId": "p", "ResourceProperties": PROPERTIES}
    assert migrate.handler(event, None) == {"PhysicalResourceId": "p"}
    assert executor.calls == []
