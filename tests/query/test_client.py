"""``blocklake.client``: SQL in, an Arrow table out, over HTTP, with errors that say why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blocklake import client
from blocklake.config import Settings
from blocklake.server.http import LocalServer
from tests.query.conftest import HOUR, T0, QueryLake


@pytest.fixture
def lake_url(settings: Settings, context: object):
    with LocalServer(settings, port=0) as server:
        QueryLake(settings, context, server.lake).record("acme", [1, 2])
        yield server.url


def test_query_returns_an_arrow_table_for_any_time_form(lake_url: str) -> None:
    lake = client.connect(lake_url, "key-acme")
    sql = "SELECT message, time FROM log_entries ORDER BY time"
    for begin, end in [
        (T0, T0 + 4 * HOUR),
        ("2026-11-20T08:00:00Z", "2026-11-20T12:00:00"),
        (datetime(2026, 11, 20, 8, tzinfo=UTC), datetime(2026, 11, 20, 12)),
    ]:
        table = lake.query(sql, begin=begin, end=end)
        assert table.column("message").to_pylist() == ["at 1h", "at 2h"]
        time_type = table.schema.field("time").type
        assert (time_type.unit, time_type.tz) == ("us", "Etc/UTC")


def test_cut_answers_say_so_in_the_schema_and_warn(lake_url: str) -> None:
    with pytest.warns(client.TruncatedWarning, match="max_rows limit cut the rest"):
        table = client.connect(lake_url, "key-acme").query(
            "SELECT * FROM range(30)", begin=T0, end=T0 + 1, max_rows=4
        )
    assert table.num_rows == 4
    assert table.schema.metadata[b"blocklake.truncated_by"] == b"max_rows"


def test_cut_answers_can_raise_or_pass_silently(lake_url: str) -> None:
    import warnings

    lake = client.connect(lake_url, "key-acme")
    sql = "SELECT * FROM range(30)"
    with pytest.raises(client.QueryError) as cut:
        lake.query(sql, begin=T0, end=T0 + 1, max_rows=4, on_truncated="raise")
    assert cut.value.code == "truncated" and "first 4 rows" in cut.value.message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = lake.query(sql, begin=T0, end=T0 + 1, max_rows=4, on_truncated="ignore")
        assert quiet.num_rows == 4
        assert lake.query(sql, begin=T0, end=T0 + 1).num_rows == 30  # whole: no warning


def test_errors_carry_status_code_and_message(lake_url: str) -> None:
    with pytest.raises(client.QueryError) as refused:
        client.connect(lake_url, "key-acme").query("SELECT nope FROM log_entries", T0, T0 + 1)
    assert (refused.value.status, refused.value.code) == (400, "query_failed")
    assert "nope" in str(refused.value)
    with pytest.raises(client.QueryError) as unauthorized:
        client.connect(lake_url, "wrong").query("SELECT 1", T0, T0 + 1)
    assert unauthorized.value.status == 401 and "API key" in str(unauthorized.value)


def test_begin_defaults_to_a_day_before_end(lake_url: str) -> None:
    lake = client.connect(lake_url, "key-acme")
    table = lake.query("SELECT count(*) AS n FROM log_entries", end="2026-11-21T07:00:00Z")
    assert table.column("n").to_pylist() == [2]  # T0 + 1 h and 2 h are within the day before
    table = lake.query("SELECT count(*) AS n FROM log_entries", end="2026-11-21T09:30:00Z")
    assert table.column("n").to_pylist() == [1]
    with pytest.raises(client.QueryError, match="not an ISO 8601 time"):
        lake.query("SELECT 1", end="tomorrow")
