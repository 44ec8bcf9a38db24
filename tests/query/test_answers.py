"""Answers every client can read: each format holds every table's columns, says when it was
cut, and JSON stays exact and strict."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest

from tests.query.conftest import QueryLake, window


def _refuse(constant: str) -> None:
    raise AssertionError(f"non-standard JSON constant {constant}")


def _table(output: str, body: bytes) -> pa.Table:
    if output == "arrow":
        return pa.ipc.open_stream(io.BytesIO(body)).read_all()
    return pa_parquet.read_table(io.BytesIO(body))


@pytest.mark.parametrize("table", ["log_entries", "processes", "streams"])
def test_csv_of_every_column_writes_maps_and_lists_as_json_text(
    lake: QueryLake, table: str
) -> None:
    lake.record("acme", [1])
    status, body = lake.query(window(0, 4, f"SELECT * FROM {table}", format="csv"))
    assert status == 200, body
    (row,) = list(csv.DictReader(io.StringIO(body.decode())))
    assert json.loads(row["properties"]) == ({} if table != "processes" else {"version": "1.2"})
    if table == "streams":
        assert json.loads(row["tags"]) == ["log"]


def test_the_issue_s_csv_query_answers(lake: QueryLake) -> None:
    lake.record("acme", [1])
    sql = "SELECT time, level, message, properties FROM log_entries"
    status, body = lake.query(window(0, 4, sql, format="csv"))
    assert status == 200
    assert body.decode().splitlines() == [
        '"time","level","message","properties"',
        '2026-11-20 09:00:00.000000+0000,"INFO","at 1h","{}"',
    ]


def test_empty_maps_are_json_objects(lake: QueryLake) -> None:
    lake.record("acme", [1])
    status, body = lake.query(window(0, 4, "SELECT properties FROM log_entries"))
    assert (status, body["rows"]) == (200, [[{}]])


@pytest.mark.parametrize("output", ["json", "csv", "arrow", "parquet"])
def test_rows_cut_by_count_are_said_in_a_header_of_every_format(
    lake: QueryLake, output: str
) -> None:
    response = lake.response(window(0, 1, "SELECT * FROM range(20000)", format=output))
    assert response["statusCode"] == 200
    assert response["headers"]["X-Blocklake-Truncated"] == "max_rows"
    _, body = lake.query(window(0, 1, "SELECT * FROM range(20000)", format=output))
    if output == "json":
        assert (body["row_count"], body["truncated_by"]) == (10_000, "max_rows")
    elif output == "csv":
        assert len(body.decode().splitlines()) == 1 + 10_000
    else:
        table = _table(output, body)
        assert table.num_rows == 10_000
        assert table.schema.metadata[b"blocklake.truncated_by"] == b"max_rows"


@pytest.mark.parametrize("output", ["arrow", "parquet"])
def test_whole_answers_carry_no_truncation_mark(lake: QueryLake, output: str) -> None:
    response = lake.response(window(0, 1, "SELECT * FROM range(10)", format=output))
    assert "X-Blocklake-Truncated" not in response["headers"]
    _, body = lake.query(window(0, 1, "SELECT * FROM range(10)", format=output))
    table = _table(output, body)
    assert table.column(0).to_pylist() == list(range(10))
    assert b"blocklake.truncated_by" not in (table.schema.metadata or {})


def test_parquet_keeps_types_and_nested_values(lake: QueryLake) -> None:
    lake.record("acme", [1])
    status, body = lake.query(window(0, 4, "SELECT * FROM processes", format="parquet"))
    assert status == 200
    table = _table("parquet", body)
    assert table.schema.field("properties").type == pa.map_(pa.string(), pa.string())
    assert table.column("properties").to_pylist() == [[("version", "1.2")]]


def test_parquet_answers_are_capped_in_bytes(lake: QueryLake) -> None:
    sql = "SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS h FROM range(10000) t(i)"
    status, body = lake.query(window(0, 1, sql, format="parquet", max_rows=10_000))
    whole = len(body)
    assert status == 200 and _table("parquet", body).num_rows == 10_000
    from blocklake.query.engine import QueryResult
    from blocklake.query.service import to_bytes

    table = _table("parquet", body)
    cut, truncated_by = to_bytes(QueryResult([], table), "parquet", whole // 2)
    assert 0 < len(cut) <= whole // 2 and truncated_by == "max_result_bytes"
    kept = _table("parquet", cut)
    assert 0 < kept.num_rows < 10_000
    assert kept.column("i").to_pylist() == list(range(kept.num_rows))


def test_non_finite_floats_are_null_and_integers_exact(lake: QueryLake) -> None:
    sql = (
        "SELECT 0.5, 'inf'::double, 'nan'::double, '-inf'::double, "
        "9007199254740991::BIGINT AS safe, 9007199254740993::BIGINT AS big, "
        "-9007199254740993::BIGINT AS neg, [1, 9007199254740993] AS l"
    )
    response = lake.response(window(0, 1, sql))
    (row,) = json.loads(response["body"], parse_constant=_refuse)["rows"]
    assert row == [
        0.5,
        None,
        None,
        None,
        9007199254740991,
        "9007199254740993",
        "-9007199254740993",
        [1, "9007199254740993"],
    ]


def test_integer_sums_stay_integers(lake: QueryLake) -> None:
    lake.record("acme", [1, 2, 3])
    status, body = lake.query(window(0, 4, "SELECT sum(object_count) FROM blocks"))
    assert (status, body["rows"]) == (200, [[3]])
    assert isinstance(body["rows"][0][0], int)
    status, body = lake.query(
        window(0, 1, "SELECT sum(i) * 4611686018427387904 FROM range(3) t(i)")
    )
    assert body["rows"] == [[str(3 * 2**62)]]


def test_csv_keeps_non_finite_floats_where_json_cannot(lake: QueryLake) -> None:
    sql = "SELECT 'inf'::double AS x, ['nan'::double, 1.5] AS l"
    status, body = lake.query(window(0, 1, sql, format="csv"))
    assert (status, body.decode().splitlines()) == (200, ['"x","l"', 'inf,"[null, 1.5]"'])
