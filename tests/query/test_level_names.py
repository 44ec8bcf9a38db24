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


@pytest.mark.parametrize(
    "sql,meant",
    [
        ("SELECT count(*) FROM log_entries WHERE upper(level) = 'WARNING'", "WARN"),
        ("SELECT count(*) FROM log_entries WHERE level::VARCHAR = 'WARNING'", "WARN"),
        ("SELECT count(*) FROM log_entries WHERE level LIKE 'WARNING'", "WARN"),
        ("SELECT count(*) FROM log_entries WHERE level ILIKE 'critical'", "FATAL"),
        ("SELECT count(*) FROM log_entries WHERE lower(level) IN ('warning')", "WARN"),
        (
            "WITH x AS (SELECT level AS lv FROM log_entries) SELECT count(*) FROM x "
            "WHERE lv = 'WARNING'",
            "WARN",
        ),
        (
            "SELECT count(*) FROM (SELECT lower(level) AS l1 FROM log_entries) "
            "WHERE upper(l1) = 'Warning'",
            "WARN",
        ),
    ],
)
def test_an_expression_of_level_compared_with_logging_s_names_is_refused(
    sql: str, meant: str
) -> None:
    """Report A, finding 4: these answered 0 rows while the README said never."""
    with pytest.raises(ClientError) as raised:
        check_query(sql, frozenset(views()))
    assert raised.value.status == 400
    assert f"you may mean '{meant}'" in raised.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM log_entries WHERE lower(level) = 'warn'",
        "SELECT count(*) FROM log_entries WHERE level ILIKE 'warn'",
        "SELECT count(*) FROM log_entries WHERE level LIKE 'WARN%'",
        "SELECT count(*) FROM log_entries WHERE upper(message) = 'WARNING'",
        "SELECT count(*) FROM log_entries WHERE message LIKE '%WARNING%'",
        "WITH x AS (SELECT message AS lv FROM log_entries) SELECT count(*) FROM x "
        "WHERE lv = 'WARNING'",
    ],
)
def test_expressions_that_can_match_pass(sql: str) -> None:
    check_query(sql, frozenset(views()))
