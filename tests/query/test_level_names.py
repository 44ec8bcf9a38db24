"""``WHERE level = 'WARNING'`` would match nothing (the lake spells it WARN, as OpenTelemetry
does; logging spells it WARNING): refused with the lake's spelling, never a silent empty answer."""

from __future__ import annotations

import pytest

from blocklake.errors import ClientError
from blocklake.query.duckdb_sql import check_query
from blocklake.query.views import views


@pytest.mark.parametrize(
    "sql,meant",
    [
        ("SELECT count(*) FROM log_entries WHERE level = 'WARNING'", "WARN"),
        ("SELECT count(*) FROM log_entries l WHERE l.level <> 'CRITICAL'", "FATAL"),
        ("SELECT count(*) FROM log_entries WHERE level IN ('ERROR', 'warn')", "WARN"),
        ("SELECT count(*) FROM log_entries WHERE level NOT IN ('Info')", "INFO"),
    ],
)
def test_a_level_the_lake_never_holds_is_refused_naming_its_spelling(sql: str, meant: str) -> None:
    with pytest.raises(ClientError) as raised:
        check_query(sql, frozenset(views()))
    assert raised.value.status == 400
    assert f"you may mean '{meant}'" in raised.value.message
    assert "level_number >= 13" in raised.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM log_entries WHERE level = 'WARN'",
        "SELECT count(*) FROM log_entries WHERE level IN ('FATAL', 'ERROR')",
        "SELECT count(*) FROM log_entries WHERE message = 'WARNING'",
        "SELECT count(*) FROM log_entries WHERE level_number >= 13",
        "SELECT count(*) FROM measures WHERE name = 'WARNING'",
    ],
)
def test_the_lake_s_levels_and_other_columns_pass(sql: str) -> None:
    check_query(sql, frozenset(views()))
