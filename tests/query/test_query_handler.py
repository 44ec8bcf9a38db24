"""The query Lambda: SQL over the tenant's tables in a time range, and what it refuses."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from blocklake.config import Settings
from tests.query.conftest import T0, QueryLake, window


def test_time_range_selects_rows_and_columns_have_types(lake: QueryLake) -> None:
    lake.record("acme", [0, 0.5, 2, 3])
    status, result = lake.query(
        window(0.25, 2.5, "SELECT message, time FROM log_entries ORDER BY time")
    )
    assert status == 200
    assert result["columns"] == [
        {"name": "message", "type": "VARCHAR"},
        {"name": "time", "type": "TIMESTAMP WITH TIME ZONE"},
    ]
    assert [row[0] for row in result["rows"]] == ["at 0.5h", "at 2h"]
    assert result["rows"][1][1] == "2026-11-20T10:00:00+00:00"
    assert result["truncated"] is False


def test_iso_times_are_accepted(lake: QueryLake) -> None:
    lake.record("acme", [1])
    status, result = lake.query(
        {
            "sql": "SELECT count(*) AS n FROM log_entries",
            "begin": "2026-11-20T08:30:00Z",
            "end": "2026-11-20T09:30:00+00:00",
        }
    )
    assert (status, result["rows"]) == (200, [[1]])


def test_tenants_see_only_their_own_rows(lake: QueryLake, settings: Settings) -> None:
    lake.record("acme", [1], prefix="acme")
    lake.record("globex", [1], prefix="globex")
    for tenant in ("acme", "globex"):
        status, result = lake.query(window(0, 4, "SELECT message FROM log_entries"), tenant=tenant)
        assert (status, result["rows"]) == (200, [[f"{tenant} 1h"]])
    acme_files = (
        str(settings.data_dir.resolve() / "tables/log_entries/tenant=acme") + "/**/*.parquet"
    )
    status, result = lake.query(
        window(0, 4, f"SELECT * FROM read_parquet('{acme_files}')"), tenant="globex"
    )
    assert status == 400 and "read_parquet is not available" in result["error"]["message"]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DROP VIEW log_entries", "only queries"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("COPY log_entries TO '/tmp/out.csv'", "only queries"),
        ("SET threads = 1", "only queries"),
        ("SELEC 1", "syntax error"),
        ("SELECT no_such_column FROM log_entries", "no_such_column"),
        ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
        ("SELECT current_setting('allowed_directories')", "current_setting"),
    ],
)
def test_refuses_what_is_not_one_query(lake: QueryLake, sql: str, reason: str) -> None:
    status, result = lake.query(window(0, 1, sql))
    assert status == 400
    assert reason in result["error"]["message"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"sql": "SELECT 1", "end": T0}, "begin"),
        ({"sql": "SELECT 1", "begin": "yesterday", "end": T0}, "begin"),
        ({"sql": "SELECT 1", "begin": T0, "end": T0 - 1}, "begin"),
        ({"sql": "", "begin": T0, "end": T0 + 1}, "sql"),
        ({"sql": "SELECT 1", "begin": T0, "end": T0 + 1, "format": "xml"}, "format"),
        ({"sql": "SELECT 1", "begin": T0, "end": T0 + 1, "max_rows": 0}, "max_rows"),
    ],
)
def test_bad_request_names_the_field(lake: QueryLake, document: dict, field: str) -> None:
    status, result = lake.query(document)
    assert status == 400
    assert field in result["error"]["message"]


def test_rows_past_the_limit_are_cut_and_said(lake: QueryLake) -> None:
    status, result = lake.query(window(0, 1, "SELECT * FROM range(100)", max_rows=7))
    assert (status, result["row_count"], result["truncated"]) == (200, 7, True)


def test_empty_tables_have_their_columns(lake: QueryLake) -> None:
    status, result = lake.query(window(0, 1, "SELECT * FROM thread_spans"))
    assert status == 200 and result["rows"] == []
    names = [c["name"] for c in result["columns"]]
    assert names[10:13] == ["begin", "end", "duration_ns"]
    assert names[-2:] == ["attributes", "attributes_num"]


def test_csv_and_arrow_formats(lake: QueryLake) -> None:
    lake.record("acme", [1, 2])
    sql = "SELECT message FROM log_entries ORDER BY time"
    status, body = lake.query(window(0, 4, sql, format="csv"))
    assert status == 200 and body.decode().splitlines() == ['"message"', '"at 1h"', '"at 2h"']
    status, body = lake.query(window(0, 4, sql, format="arrow"))
    table = pa.ipc.open_stream(io.BytesIO(body)).read_all()
    assert status == 200 and table.column("message").to_pylist() == ["at 1h", "at 2h"]
