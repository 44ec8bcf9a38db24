"""Every DuckDB type answers in every format: nothing a query can select is a bare 500."""

from __future__ import annotations

import base64
import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest

from blocklake.config import Settings
from blocklake.server.events import LambdaContext
from tests.helpers import KEYS
from tests.query.conftest import QueryLake, window

VALUES = {
    "boolean": "true",
    "tinyint": "-1::TINYINT",
    "utinyint": "255::UTINYINT",
    "usmallint": "65535::USMALLINT",
    "uinteger": "4294967295::UINTEGER",
    "ubigint": "18446744073709551615::UBIGINT",
    "hugeint": "170141183460469231731687303715884105727::HUGEINT",
    "uhugeint": "340282366920938463463374607431768211455::UHUGEINT",
    "float": "'nan'::FLOAT",
    "double": "'-inf'::DOUBLE",
    "decimal": "1.5::DECIMAL(38, 10)",
    "varchar": "'a\x1bb'",
    "blob": "'\\xAA\\x00'::BLOB",
    "uuid": "'6b2d6f8e-0c3a-4a3e-9a4f-1f2d3c4b5a69'::UUID",
    "date": "'infinity'::DATE",
    "time": "'12:34:56.789'::TIME",
    "timetz": "'12:34:56+02'::TIMETZ",
    "timestamp": "'2026-11-20 08:00:00.123456'::TIMESTAMP",
    "timestamp_s": "'2026-11-20 08:00:00'::TIMESTAMP_S",
    "timestamp_ms": "'2026-11-20 08:00:00.123'::TIMESTAMP_MS",
    "timestamp_ns": "'2026-11-20 08:00:00.123456789'::TIMESTAMP_NS",
    "timestamptz": "'-infinity'::TIMESTAMPTZ",
    "interval": "INTERVAL '1 month 2 days 3.5 seconds'",
    # A span's "end" - "begin"
    "span_interval": "'2026-11-20 09:00:00.5+00'::TIMESTAMPTZ - '2026-11-20 08:00:00+00'"
    "::TIMESTAMPTZ",
    "enum": "'b'::ENUM('a', 'b')",
    "bit": "'0101'::BIT",
    "varint": "'123456789012345678901234567890'::VARINT",
    "list": "[1, NULL, 3]",
    "array": "[1.5, 2.5]::DOUBLE[2]",
    "struct": "{'a': 1, 'b': 'x'}",
    "map": "MAP {'k': 'v'}",
    "map_int_keys": "MAP {1: 'one'}",
    "union": "union_value(n := 5)::UNION(n INTEGER, s VARCHAR)",
    "nested_blob": "['\\xAA'::BLOB]",
    "null": "NULL",
}


def _sql(name: str) -> str:
    return f"SELECT {VALUES[name]} AS v"


@pytest.fixture(scope="module")
def typed_lake(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("typed") / "lake", api_keys=dict(KEYS))
    query_lake = QueryLake(settings, LambdaContext("blocklake-test"))
    yield query_lake
    query_lake.lake.close()


@pytest.mark.parametrize("output", ["json", "csv", "arrow", "parquet"])
@pytest.mark.parametrize("name", list(VALUES))
def test_every_type_answers_in_every_format(typed_lake: QueryLake, name: str, output: str) -> None:
    status, body = typed_lake.query(window(0, 4, _sql(name), format=output))
    assert status == 200, (name, output, body)
    if output == "json":
        assert isinstance(body, dict)
    elif output == "csv":
        assert next(csv.reader(io.StringIO(body.decode()))) == ["v"]
    elif output == "arrow":
        assert pa.ipc.open_stream(io.BytesIO(body)).read_all().column_names == ["v"]
    else:
        assert pa_parquet.read_table(io.BytesIO(body)).column_names == ["v"]


def test_a_blob_is_base64_in_csv_as_in_json(typed_lake: QueryLake) -> None:
    sql = "SELECT '\\xAA'::BLOB AS v"
    status, body = typed_lake.query(window(0, 4, sql, format="csv"))
    assert (status, body.decode().splitlines()) == (200, ['"v"', '"qg=="'])
    status, answer = typed_lake.query(window(0, 4, sql))
    assert answer["rows"] == [[base64.b64encode(b"\xaa").decode()]]


def test_an_interval_keeps_its_parts_in_parquet_and_its_type_in_arrow(
    typed_lake: QueryLake,
) -> None:
    sql = f"SELECT {VALUES['span_interval']} AS took, {VALUES['interval']} AS i"
    status, body = typed_lake.query(window(0, 4, sql, format="parquet"))
    assert status == 200
    table = pa_parquet.read_table(io.BytesIO(body))
    assert table.column("took").to_pylist() == [
        {"months": 0, "days": 0, "nanoseconds": 3_600_500_000_000}
    ]
    assert table.column("i").to_pylist() == [{"months": 1, "days": 2, "nanoseconds": 3_500_000_000}]
    status, body = typed_lake.query(window(0, 4, sql, format="arrow"))
    assert pa.types.is_interval(pa.ipc.open_stream(io.BytesIO(body)).read_all().schema[0].type)
    status, body = typed_lake.query(window(0, 4, sql, format="csv"))
    row = next(csv.DictReader(io.StringIO(body.decode())))
    assert json.loads(row["i"]) == {"months": 1, "days": 2, "nanoseconds": 3_500_000_000}
