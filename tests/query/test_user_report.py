"""What a new user of the query API found (issue 14's follow-up): unknown fields refused, limit
errors naming their settings, SUMMARIZE's hint for infinite values, nanosecond bounds kept."""

from __future__ import annotations

from dataclasses import replace

import pytest

from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.query.admission import TenantSlots
from blocklake.query.duckdb_sandbox import _out_of_memory
from blocklake.query.plan import Scan, TableScan, dry_run
from blocklake.query.service import FIELDS, _explained
from blocklake.query.views import timestamp_literal, views
from tests.query.conftest import HOUR, T0, QueryLake, window
from tests.query.test_guard_rails import _guarded

COUNT = "SELECT count(*) FROM log_entries"


@pytest.mark.parametrize("field", ["dryrun", "maxrows", "fromat"])
def test_an_unknown_field_is_refused_naming_it_and_the_known_ones(
    lake: QueryLake, field: str
) -> None:
    status, body = lake.query(window(0, 1, "SELECT 1", **{field: True}))
    assert (status, body["error"]["code"]) == (400, "invalid_field")
    message = body["error"]["message"]
    assert f"unknown field {field!r}" in message
    assert all(known in message for known in FIELDS)


def test_every_unknown_field_is_named(lake: QueryLake) -> None:
    status, body = lake.query(window(0, 1, "SELECT 1", dryrun=True, maxrows=3))
    assert status == 400 and "'dryrun'" in body["error"]["message"]
    assert "'maxrows'" in body["error"]["message"]


# Item 12: the lake holds microseconds; [begin, end) in nanoseconds keeps row t µs exactly when
# t * 1000 >= begin and t * 1000 < end.
@pytest.mark.parametrize(
    ("begin", "end", "kept"),
    [
        (T0, T0 + HOUR + 1, 1),  # ends 1 ns past the row: the row is before the end
        (T0, T0 + HOUR, 0),  # ends at the row: the row is not before the end
        (T0 + HOUR - 1, T0 + 2 * HOUR, 1),  # starts 1 ns before the row
        (T0 + HOUR + 1, T0 + 2 * HOUR, 0),  # starts 1 ns past the row: the row is before it
        (T0 + HOUR + 999, T0 + 2 * HOUR, 0),
    ],
)
def test_nanosecond_bounds_keep_exactly_the_rows_in_range(
    lake: QueryLake, begin: int, end: int, kept: int
) -> None:
    lake.record("acme", [1])
    status, body = lake.query({"sql": COUNT, "begin": begin, "end": end})
    assert (status, body["rows"]) == (200, [[kept]])


def test_the_literals_round_both_bounds_up_to_the_microsecond() -> None:
    base = 1_764_489_600_000_000_000  # 2025-11-30T08:00:00Z
    assert timestamp_literal(base + 805_244_001) == "TIMESTAMPTZ '2025-11-30 08:00:00.805245+00'"
    assert timestamp_literal(base + 253_283_999, zoned=False) == (
        "TIMESTAMP '2025-11-30 08:00:00.253284'"
    )
    assert timestamp_literal(base + 253_283_000) == "TIMESTAMPTZ '2025-11-30 08:00:00.253283+00'"
    assert timestamp_literal(base + 999_999_999) == "TIMESTAMPTZ '2025-11-30 08:00:01.000000+00'"
    condition = views()["log_entries"].condition(base + 1, base + 805_244_001, zoned=False)
    assert condition == (
        "time >= TIMESTAMP '2025-11-30 08:00:00.000001' "
        "AND time < TIMESTAMP '2025-11-30 08:00:00.805245'"
    )


# Item 11: every limit's error names the limit and its setting.
def test_a_timeout_names_its_setting(settings: Settings, context: object) -> None:
    limited = QueryLake(replace(settings, query=QueryLimits(timeout_s=1.0)), context)
    try:
        status, body = limited.query(window(0, 1, "SELECT count(*) FROM range(1000000000000)"))
    finally:
        limited.lake.close()
    assert (status, body["error"]["code"]) == (504, "query_timeout")
    assert "1 s (BLOCKLAKE_QUERY_TIMEOUT_S)" in body["error"]["message"]


def test_the_memory_limit_names_its_settings() -> None:
    error = _out_of_memory(QueryLimits(memory_mb=64, temp_mb=16))
    assert "64 MB of memory (BLOCKLAKE_QUERY_MEMORY_MB)" in error.message
    assert "16 MB of spill space (BLOCKLAKE_QUERY_TEMP_MB)" in error.message


@pytest.mark.parametrize(("limit", "words"), [(1, "1 query is"), (3, "3 queries are")])
def test_the_concurrency_limit_names_its_setting(limit: int, words: str) -> None:
    slots = TenantSlots(limit)
    taken = [slots.taken("acme") for _ in range(limit)]
    for slot in taken:
        slot.__enter__()
    with pytest.raises(ClientError) as refused, slots.taken("acme"):
        pass
    assert refused.value.status == 429
    assert words in refused.value.message
    assert "(BLOCKLAKE_QUERY_CONCURRENCY)" in refused.value.message


def test_a_dry_run_past_a_limit_says_which(lake: QueryLake) -> None:
    lake.record("acme", [1, 2, 3])
    _guarded(lake, max_scan_files=2)
    status, plan = lake.query(window(0, 4, COUNT, dry_run=True))
    assert status == 200 and plan["within_limits"] is False
    (reason,) = plan["limits_exceeded"]
    assert "would read 3 files" in reason and "BLOCKLAKE_QUERY_MAX_SCAN_FILES" in reason
    _guarded(lake, daily_queries=0)
    status, plan = lake.query(window(0, 4, COUNT, dry_run=True))
    assert plan["within_limits"] is False
    assert "BLOCKLAKE_QUERY_DAILY_QUERIES" in plan["limits_exceeded"][0]


def test_a_dry_run_rounds_its_dollars() -> None:
    plan = dry_run(Scan({"log_entries": TableScan(files=1, bytes=1)}), "duckdb", QueryLimits())
    assert plan["estimate"]["athena_usd"] == 5.24288e-05
    assert plan["within_limits"] is True and plan["limits_exceeded"] == []
    assert len(repr(plan["estimate"]["lambda_usd"])) < 12


# Item 9: SUMMARIZE over a column holding inf beside finite values.
def test_summarize_with_an_infinite_value_gives_a_hint(lake: QueryLake) -> None:
    sql = "SUMMARIZE SELECT x::DOUBLE AS value FROM (VALUES ('inf'), ('1')) t(x)"
    status, body = lake.query(window(0, 1, sql))
    assert status == 400
    message = body["error"]["message"]
    assert "STDDEV_SAMP is out of range" in message and "isfinite" in message


def test_summarize_of_a_view_names_its_double_columns() -> None:
    error = ClientError(400, "query_failed", "Out of Range Error: STDDEV_SAMP is out of range!")
    message = _explained(error, "SUMMARIZE measures").message
    doubles = [c.name for c in views()["measures"].table.columns if c.type == "float64"]
    assert doubles and f"a DOUBLE column of measures ({', '.join(doubles)})" in message
    assert f"SUMMARIZE SELECT * FROM measures WHERE isfinite({doubles[0]})" in message
