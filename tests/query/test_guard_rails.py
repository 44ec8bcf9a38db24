"""Guard-rails past the per-query limits: files and bytes counted before a query runs, per
tenant per day budgets, the dry run, and the engine a request asks for; each limit's error names
the limit and its value."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyathena
import pytest

from blocklake.config import QueryLimits
from blocklake.query.budget import DailyBudget
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.plan import ATHENA_MIN_BYTES
from lambdas.query.handler import make_handler
from tests.query.conftest import HOUR, T0, QueryLake, window
from tests.query.fake_athena import FakeAthena, FakeSession

COUNT = "SELECT count(*) FROM log_entries"


def _files(lake: QueryLake, tenant: str = "acme") -> list[Path]:
    root = lake.lake.settings.data_dir
    return sorted(root.glob(f"tables/log_entries/tenant={tenant}/data/*/*.parquet"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _guarded(lake: QueryLake, clock: Clock | None = None, **limits: int) -> FakeAthena:
    """The lake's query handler anew with ``limits``, a daily budget and a fake Athena."""
    settings = replace(QueryLimits(), **limits)
    athena = FakeAthena(lake.lake.settings.data_dir, "lake_db", "lake_wg", 10 * 1024**3)
    from blocklake.query.athena_engine import AthenaEngine

    engine = AthenaEngine(
        lambda: pyathena.connect(
            session=FakeSession(athena),
            region_name="eu-west-1",
            work_group="lake_wg",
            poll_interval=0.01,
        ),
        "lake_db",
        "lake_wg",
        settings,
    )
    lake.lake.handlers["query"] = make_handler(
        DuckDbEngine(lake.lake.blobs, lake.lake.lake, settings),
        settings,
        athena=engine,
        budget=DailyBudget(lake.lake.blobs, settings, clock or Clock()),
    )
    return athena


def test_a_dry_run_counts_partitions_files_and_bytes_without_running(lake: QueryLake) -> None:
    lake.record("acme", [1, 2, 2.5, 6])
    lake.record("globex", [1])
    _guarded(lake)
    sql = "SELECT count(*) FROM log_entries, range(1000000000000)"  # would never finish
    status, plan = lake.query(window(0, 3, sql, dry_run=True))
    assert status == 200, plan
    # One commit: one file per hour partition (Iceberg's time_hour=YYYY-MM-DD-HH); 14h is
    # 6 h past 08:00, outside the range.
    in_range = [f for f in _files(lake) if not f.parent.name.endswith("-14")]
    assert plan["tables"]["log_entries"] == {
        "partitions": ["date=2026-11-20/hour=09", "date=2026-11-20/hour=10"],
        "files": 2,
        "bytes": sum(f.stat().st_size for f in in_range),
        "rows": 3,
    }
    assert (plan["files"], plan["partitions"], plan["rows"]) == (2, 2, 3)
    estimate = plan["estimate"]
    assert estimate["athena_bytes_billed"] == ATHENA_MIN_BYTES  # Athena's minimum per query
    assert estimate["athena_usd"] == pytest.approx(ATHENA_MIN_BYTES / 1e12 * 5)
    assert estimate["lambda_seconds"] > 0 and estimate["conversions"] == 0
    assert plan["within_limits"] is True and plan["today"] == {"queries": 0, "scanned_bytes": 0}


def test_a_dry_run_still_meets_the_allow_list(lake: QueryLake) -> None:
    _guarded(lake)
    status, body = lake.query(window(0, 3, "SELECT * FROM read_text('/etc/passwd')", dry_run=True))
    assert (status, body["error"]["code"]) == (400, "not_allowed")


def test_too_many_files_is_refused_before_running(lake: QueryLake) -> None:
    lake.record("acme", [1, 2, 3])
    _guarded(lake, max_scan_files=2)
    status, body = lake.query(window(0, 4, COUNT))
    assert (status, body["error"]["code"]) == (400, "query_scan_limit")
    message = body["error"]["message"]
    assert (
        "would read 3 files" in message and "may read 2 (BLOCKLAKE_QUERY_MAX_SCAN_FILES)" in message
    )
    status, body = lake.query(window(0, 2.5, COUNT))  # a narrower range fits
    assert (status, body["rows"]) == (200, [[2]])
    status, body = lake.query(window(0, 4, "SELECT 1"))  # a query naming no view reads nothing
    assert status == 200


def test_too_many_bytes_is_refused_before_running(lake: QueryLake) -> None:
    lake.record("acme", [1, 2])
    size = sum(f.stat().st_size for f in _files(lake))
    _guarded(lake, max_scan_bytes=size - 1)
    status, body = lake.query(window(0, 4, COUNT))
    assert (status, body["error"]["code"]) == (400, "query_scan_limit")
    assert f"would read {size} bytes; one query may read {size - 1}" in body["error"]["message"]


def test_the_scan_is_checked_before_athena_is_asked(lake: QueryLake) -> None:
    lake.record("acme", [1, 2])
    athena = _guarded(lake, max_scan_files=1)
    status, body = lake.query(window(0, 4, COUNT, engine="athena"))
    assert (status, body["error"]["code"]) == (400, "query_scan_limit")
    assert athena.calls == []


def test_daily_queries_per_tenant(lake: QueryLake) -> None:
    clock = Clock()
    _guarded(lake, clock, daily_queries=2)
    for _ in range(2):
        assert lake.query(window(0, 1, "SELECT 1"))[0] == 200
    response = lake.response(window(0, 1, "SELECT 1"))
    body = json.loads(response["body"])
    assert (response["statusCode"], body["error"]["code"]) == (429, "daily_query_limit")
    assert "BLOCKLAKE_QUERY_DAILY_QUERIES = 2" in body["error"]["message"]
    assert int(response["headers"]["Retry-After"]) == 16 * 3600  # T0 is 08:00 UTC
    assert lake.query(window(0, 1, "SELECT 1"), tenant="globex")[0] == 200
    clock.now += 24 * HOUR
    assert lake.query(window(0, 1, "SELECT 1"))[0] == 200


def test_daily_scanned_bytes_per_tenant(lake: QueryLake) -> None:
    lake.record("acme", [1])
    size = sum(f.stat().st_size for f in _files(lake))
    _guarded(lake, daily_scan_bytes=size + size // 2)
    assert lake.query(window(0, 4, COUNT))[0] == 200
    assert lake.query(window(0, 4, "SELECT 1"))[0] == 200  # reads nothing: within the budget
    for engine in ("duckdb", "athena"):  # both refuse before running what would go past it
        status, body = lake.query(window(0, 4, COUNT, engine=engine))
        assert (status, body["error"]["code"]) == (429, "daily_scan_limit")
        message = body["error"]["message"]
        assert f"scanned {size} bytes today and this one would scan {size} more" in message
        assert f"BLOCKLAKE_QUERY_DAILY_SCAN_BYTES = {size + size // 2}" in message


def test_athena_answers_through_the_handler_and_counts_what_it_scanned(lake: QueryLake) -> None:
    lake.record("acme", [1, 2])
    athena = _guarded(lake)
    status, body = lake.query(window(0, 4, COUNT, engine="athena"))
    assert (status, body["rows"]) == (200, [[2]])
    (execution,) = athena.executions.values()
    status, plan = lake.query(window(0, 4, "SELECT 1", dry_run=True))
    assert plan["today"] == {"queries": 1, "scanned_bytes": execution.scanned}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"engine": "spark"}, "field 'engine': expected one of ['duckdb', 'athena']"),
        ({"engine": "athena"}, "field 'engine': athena is not configured on this server"),
        ({"dry_run": "yes"}, "field 'dry_run'"),
    ],
)
def test_bad_engine_or_dry_run_names_the_field(lake: QueryLake, extra: dict, message: str) -> None:
    status, body = lake.query(window(0, 1, "SELECT 1", **extra))
    assert status == 400 and message in body["error"]["message"]
