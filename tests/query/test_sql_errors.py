"""Errors that say what went wrong and where, and read-only introspection of the views."""

from __future__ import annotations

import pytest

from blocklake.query.duckdb_sql import pointer
from blocklake.query.views import view_names, views
from tests.query.conftest import QueryLake, window


def _error(lake: QueryLake, sql: str) -> str:
    status, body = lake.query(window(0, 4, sql))
    assert status == 400, body
    message = body["error"]["message"]
    assert "\x1b" not in message
    return message


def test_an_unknown_table_names_the_likely_one(lake: QueryLake) -> None:
    message = _error(lake, "SELECT level FROM logs")
    assert 'Did you mean "log_entries"?' in message
    assert "log_entries, measures" in message  # and lists every view
    assert message.endswith("LINE 1: SELECT level FROM logs\n" + " " * 26 + "^")


def test_a_refused_function_is_pointed_at(lake: QueryLake) -> None:
    message = _error(lake, "SELECT 1,\n  current_setting('threads')")
    assert message.startswith("function current_setting is not available to queries")
    assert message.endswith("LINE 2:   current_setting('threads')\n" + " " * 10 + "^")


def test_syntax_errors_show_where_without_escape_codes(lake: QueryLake) -> None:
    message = _error(lake, "SELECT 1,\n  2 FRM log_entries")
    assert message.startswith('syntax error at or near "log_entries"')
    assert message.endswith("LINE 2:   2 FRM log_entries\n" + " " * 16 + "^")


def test_binder_errors_keep_duckdb_s_candidates_and_position(lake: QueryLake) -> None:
    message = _error(lake, "SELECT lvl FROM log_entries")
    assert 'Candidate bindings: "level_number", "level"' in message
    assert message.endswith("LINE 1: SELECT lvl FROM log_entries\n               ^")


def test_a_reserved_column_name_is_explained(lake: QueryLake) -> None:
    message = _error(lake, "SELECT begin, end FROM thread_spans")
    tables = "thread_spans, async_spans and unmatched_spans"
    assert f'write the column of {tables} in double quotes, "end"' in message
    status, body = lake.query(window(0, 4, 'SELECT "begin", "end" FROM thread_spans'))
    assert (status, body["rows"]) == (200, [])


def test_pointer_keeps_the_caret_on_a_long_line() -> None:
    sql = "SELECT " + "x, " * 100 + "oops"
    text = pointer(sql, sql.index("oops"))
    line, caret = text.split("\n")
    assert line[len(caret) - 1 :].startswith("oops") and len(line) < 140


def test_show_tables_lists_exactly_the_views(lake: QueryLake) -> None:
    status, body = lake.query(window(0, 4, "SHOW TABLES"))
    assert (status, sorted(row[0] for row in body["rows"])) == (200, sorted(view_names()))


@pytest.mark.parametrize("table", sorted(views()))
def test_describe_gives_each_view_s_columns(lake: QueryLake, table: str) -> None:
    status, body = lake.query(window(0, 4, f"DESCRIBE {table}"))
    assert status == 200
    assert [row[0] for row in body["rows"]] == [c.name for c in views()[table].table.columns]


def test_summarize_reads_the_view_in_the_range(lake: QueryLake) -> None:
    lake.record("acme", [1, 2, 5])
    status, body = lake.query(window(0, 4, "SUMMARIZE log_entries"))
    assert status == 200
    names = [c["name"] for c in body["columns"]]
    counts = {row[0]: row[names.index("count")] for row in body["rows"]}
    assert counts["message"] == 2
