"""The Athena engine: the typical questions give the same rows as on DuckDB (transpiled to
Athena's SQL and, in the fake, back), and the request path (start, poll, pages, errors,
cancellation, the workgroup's scan cap) is what pyathena asks of Athena."""

from __future__ import annotations

import datetime
import decimal
import time
from pathlib import Path

import pyathena
import pytest
import sqlglot

from blocklake import sdk
from blocklake.config import QueryLimits, Settings
from blocklake.demo import Workload, run_workload
from blocklake.errors import ClientError
from blocklake.query.athena_engine import AthenaEngine, athena_sql
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryRequest
from blocklake.server.http import LocalServer
from tests.query import attacks
from tests.query.fake_athena import FakeAthena, FakeSession
from tests.query.typical_questions import QUESTIONS

DATABASE = "blocklake_test"
WORKGROUP = "blocklake_test"


class Lake:
    def __init__(self, root: Path, begin_ns: int, end_ns: int, duckdb: DuckDbEngine) -> None:
        self.root = root
        self.begin_ns = begin_ns
        self.end_ns = end_ns
        self.duckdb = duckdb

    def request(self, sql: str, tenant: str = "acme", max_rows: int = 10_000) -> QueryRequest:
        return QueryRequest(tenant, sql, self.begin_ns, self.end_ns, max_rows)

    def athena(
        self, scan_cap: int = 10 * 1024**3, timeout_s: float = 20.0
    ) -> tuple[AthenaEngine, FakeAthena]:
        fake = FakeAthena(self.root, DATABASE, WORKGROUP, scan_cap)
        engine = AthenaEngine(
            lambda: pyathena.connect(
                session=FakeSession(fake),
                region_name="eu-west-1",
                work_group=WORKGROUP,
                schema_name=DATABASE,
                poll_interval=0.01,
            ),
            DATABASE,
            WORKGROUP,
            QueryLimits(timeout_s=timeout_s),
        )
        return engine, fake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake recorded by the demo's service: logs, metrics, nested spans, properties."""
    root = tmp_path_factory.mktemp("athena") / "lake"
    settings = Settings(data_dir=root, api_keys={"key-acme": "acme"})
    begin = time.time_ns() - 60 * 10**9
    with LocalServer(settings, port=0) as server:
        sdk.init(
            server.url, "key-acme", properties={"app": "shop", "build": "1.4.2"}, level="DEBUG"
        )
        try:
            run_workload(Workload(threads=2, requests_per_thread=30))
            sdk.flush()
        finally:
            sdk.shutdown()
        server.lake.wait_converted()
        engine = DuckDbEngine(server.lake.blobs, server.lake.lake)
        yield Lake(root, begin, time.time_ns() + 60 * 10**9, engine)


def _comparable(value: object) -> object:
    """Values as both engines can give them: Athena's timestamps to the millisecond, decimals
    as numbers, doubles to 9 significant digits."""
    if isinstance(value, datetime.datetime):
        value = value.astimezone(datetime.UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def _rows(table: object) -> list[tuple]:
    return [tuple(_comparable(v) for v in row.values()) for row in table.to_pylist()]


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_the_engines_agree_on_typical_questions(lake: Lake, question: str) -> None:
    request = lake.request(QUESTIONS[question])
    on_duckdb = _rows(lake.duckdb.run(request).table)
    engine, fake = lake.athena()
    answer = engine.run(request)
    assert on_duckdb, "the question must have an answer to compare"
    assert _rows(answer.table) == on_duckdb
    (started,) = fake.called("start_query_execution")
    sqlglot.parse_one(started["QueryString"], read="athena")  # Athena's SQL, whole
    assert answer.scanned_bytes > 0


ATTRIBUTE_QUESTIONS = {
    "p99 latency per route": (
        "SELECT attributes['route'] AS route, quantile_cont(duration_ns, 0.99) AS p99, "
        "max(attributes_num['items']) AS items FROM thread_spans WHERE name = 'handle_order' "
        "AND attributes['route'] IS NOT NULL GROUP BY route ORDER BY route"
    ),
    "requests by route": (
        "SELECT attributes['route'] AS route, count(*) AS requests FROM measures "
        "WHERE name = 'order_latency' GROUP BY route ORDER BY route"
    ),
    "errors and warnings": (
        "SELECT level, level_number, count(*) AS n, count(thread_id) AS threads FROM log_entries "
        "WHERE level_number >= 13 GROUP BY level, level_number ORDER BY level"
    ),
}


@pytest.mark.parametrize("question", sorted(ATTRIBUTE_QUESTIONS))
def test_attribute_and_correlation_columns_read_alike_on_both_engines(
    lake: Lake, question: str
) -> None:
    """The columns of issue 12 (typed attribute maps, level numbers, threads) transpile: one
    simple SQL each, the same rows on DuckDB and Athena."""
    request = lake.request(ATTRIBUTE_QUESTIONS[question])
    on_duckdb = _rows(lake.duckdb.run(request).table)
    engine, fake = lake.athena()
    assert len(on_duckdb) >= 2
    assert _rows(engine.run(request).table) == on_duckdb
    (started,) = fake.called("start_query_execution")
    if "attributes" in request.sql:
        assert "ELEMENT_AT(" in started["QueryString"].upper()


def test_athena_sql_reads_the_tenant_s_tables_and_uses_athena_functions(lake: Lake) -> None:
    sql = athena_sql(lake.request(QUESTIONS["p99 of a metric per minute per attribute"]), "db")
    assert sql.startswith('WITH measures AS (SELECT "process_id"') or "WITH" in sql
    assert "APPROX_PERCENTILE" in sql
    assert "ELEMENT_AT(p.properties, 'app')" in sql  # a missing key is null, not an error
    assert '"db_acme"."processes"' in sql and '"db_acme"."measures"' in sql
    assert "tenant" not in sql.replace("db_acme", "")  # the tables are the tenant's own


@pytest.mark.parametrize(
    "sql",
    [
        "WITH log_entries AS (SELECT 1 AS n) SELECT n FROM log_entries",
        # A nested CTE named like a view would keep the outer name from its pinned CTE, leaving
        # it to the Glue table of every tenant.
        "WITH x AS (WITH log_entries AS (SELECT 1 AS n) SELECT n FROM log_entries) "
        "SELECT message FROM log_entries WHERE tenant = 'globex'",
    ],
)
def test_a_cte_may_not_take_a_view_s_name(lake: Lake, sql: str) -> None:
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request(sql))
    # Refused by the shared check (no CTE may take a table's name) before Athena's own.
    assert refused.value.code == "not_allowed" and "'log_entries'" in refused.value.message
    assert fake.calls == []


def test_every_view_named_reads_through_its_pinned_cte(lake: Lake) -> None:
    sql = "WITH x AS (SELECT message FROM log_entries) SELECT * FROM x, (SELECT 1 FROM processes)"
    text = athena_sql(lake.request(sql), "db")
    assert text.count('FROM "db_acme".') == 2


def test_other_tenants_see_nothing(lake: Lake) -> None:
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request("SELECT count(*) AS n FROM log_entries", tenant="globex"))
    assert (refused.value.status, refused.value.code) == (404, "no_tables")
    (started,) = fake.called("start_query_execution")
    assert '"blocklake_test_globex"."log_entries"' in started["QueryString"]
    assert "blocklake_test_acme" not in started["QueryString"]


def test_the_request_path_starts_polls_and_pages(lake: Lake) -> None:
    engine, fake = lake.athena()
    fake.script["page_size"] = 4
    answer = engine.run(lake.request("SELECT message FROM log_entries ORDER BY time", max_rows=10))
    assert answer.table.num_rows == 10 and answer.truncated_by == "max_rows"
    (started,) = fake.called("start_query_execution")
    assert started["WorkGroup"] == WORKGROUP
    assert started["QueryExecutionContext"]["Database"] == DATABASE
    polls = fake.called("get_query_execution")
    assert len(polls) == 3  # QUEUED, RUNNING, SUCCEEDED
    pages = fake.called("get_query_results")
    # a header row and 3 rows, then 4, then 3 of the next 4: max_rows stops the paging
    assert [p["NextToken"] for p in pages] == [None, "3", "7"]


def test_athena_s_error_is_the_answer(lake: Lake) -> None:
    engine, fake = lake.athena()
    fake.script["fail"] = "SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved"
    with pytest.raises(ClientError) as failed:
        engine.run(lake.request("SELECT 1"))
    assert (failed.value.status, failed.value.code) == (400, "query_failed")
    assert "Column 'nope' cannot be resolved" in failed.value.message


def test_the_workgroup_scan_cap_is_named_when_it_stops_a_query(lake: Lake) -> None:
    engine, _ = lake.athena(scan_cap=1000)
    with pytest.raises(ClientError) as capped:
        engine.run(lake.request("SELECT count(*) FROM log_entries"))
    assert (capped.value.status, capped.value.code) == (400, "athena_scan_limit")
    assert "cap of 1000 bytes per query" in capped.value.message


def test_a_query_past_its_time_is_cancelled(lake: Lake) -> None:
    engine, fake = lake.athena(timeout_s=0.2)
    fake.script["hang"] = True
    with pytest.raises(ClientError) as stopped:
        engine.run(lake.request("SELECT count(*) FROM log_entries"))
    assert (stopped.value.status, stopped.value.code) == (504, "query_timeout")
    (stop,) = fake.called("stop_query_execution")
    (started,) = fake.executions
    assert stop["QueryExecutionId"] == started


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM read_parquet('/etc/passwd')", "SELECT current_setting('threads')"]
)
def test_the_allow_list_holds_before_athena_is_asked(lake: Lake, sql: str) -> None:
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request(sql))
    assert refused.value.code == "not_allowed" and fake.calls == []


def test_introspection_points_to_duckdb(lake: Lake) -> None:
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request("DESCRIBE log_entries"))
    assert "run on duckdb" in refused.value.message and fake.calls == []


def test_what_athena_cannot_run_is_refused_with_the_reason(lake: Lake) -> None:
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request("SELECT * FROM measures PIVOT (avg(value) FOR name IN ('a'))"))
    assert (refused.value.status, refused.value.code) == (400, "not_translatable")
    assert "PIVOT unsupported" in refused.value.message and fake.calls == []


@pytest.mark.parametrize("sql", attacks.REFUSED)
def test_every_sandbox_attack_is_refused_before_athena_is_asked(lake: Lake, sql: str) -> None:
    places = {
        "root": str(lake.root),
        "own": f"{lake.root}/tables/log_entries/tenant=acme/x.parquet",
        "other": f"{lake.root}/tables/log_entries/tenant=globex/x.parquet",
        "own_dir": f"{lake.root}/tables/log_entries/tenant=acme",
        "other_tail": "date=2026-11-20/hour=09/x.parquet",
    }
    engine, fake = lake.athena()
    with pytest.raises(ClientError) as refused:
        engine.run(lake.request(attacks.fill(sql, **places)))
    assert 400 <= refused.value.status < 500 and fake.calls == []
