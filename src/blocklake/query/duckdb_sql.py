"""What a tenant's SQL may do on DuckDB, decided on DuckDB's own parse tree.

The SQL is parsed by the same parser that will run it (``json_serialize_sql``, DuckDB's JSON
serialization of the parse tree: it serializes SELECT statements only, so every other statement
kind is refused by construction). The tree is then walked against allow-lists:

- query nodes: ``SELECT``, set operations, CTEs (recursive included);
- relations: the lake's views and the query's own CTEs (unqualified names only), subqueries,
  joins, ``VALUES``, ``PIVOT``, ``DESCRIBE``/``SUMMARIZE`` of an allowed query and ``SHOW TABLES``;
  and the table functions in ``TABLE_FUNCTIONS``, which read no file and run no SQL text;
- expressions: the classes in ``EXPRESSION_CLASSES``; functions by name, from DuckDB's built-in
  scalar, aggregate and macro functions less ``DENIED_FUNCTIONS`` (settings, variables, SQL text,
  logging, sleeping), however they are spelled (case, quoting, schema qualification).

So ``query('...')``, ``read_text``, ``glob``, ``current_setting``, ``duckdb_settings()``,
``json_execute_serialized_sql`` or a path used as a table name never reach the engine. This is one
wall of several: the engine may also read only the files of its views, with its configuration
locked (``blocklake.query.duckdb_engine``).
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Iterator
from functools import cache

import duckdb

from blocklake.errors import ClientError
from blocklake.format.schema import log_levels, tables

QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
RELATIONS = frozenset(
    {"BASE_TABLE", "TABLE_FUNCTION", "SUBQUERY", "JOIN", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
)
"""Relation kinds (DuckDB's ``TableReferenceType``) a query may use; ``SHOW_REF`` has its own
rule."""
EXPRESSION_CLASSES = frozenset(
    {
        "BETWEEN",
        "CASE",
        "CAST",
        "COLLATE",
        "COLUMN_REF",
        "COMPARISON",
        "CONJUNCTION",
        "CONSTANT",
        "FUNCTION",
        "LAMBDA",
        "LAMBDA_REF",
        "OPERATOR",
        "POSITIONAL_REFERENCE",
        "STAR",
        "SUBQUERY",
        "WINDOW",
    }
)
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
"""Table functions that compute rows from their arguments alone."""
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",  # settings hold paths and, with httpfs, credentials
        "getvariable",
        "current_query",
        "json_serialize_sql",  # SQL text in, parse tree out
        "json_deserialize_sql",
        "json_serialize_plan",  # plans SQL text: binding shows the views' file names
        "write_log",
        "parse_duckdb_log_message",
        "sleep_ms",  # holds a worker without using it
        "pg_sleep",
    }
)
UNLISTED_FUNCTIONS = frozenset(
    {
        "unnest",
        "row_number",
        "rank",
        "dense_rank",
        "rank_dense",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        "fill",
    }
)
"""``unnest`` and the window-only functions, which ``duckdb_functions()`` does not list."""
SHOW_TABLES = frozenset({'"tables"'})
"""``SHOW TABLES`` (the views of the lake, by name)."""

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_parser_lock = threading.Lock()


@cache
def _parser() -> duckdb.DuckDBPyConnection:
    """A database of its own, never given a file or an extension: only its parser is used."""
    return duckdb.connect(":memory:")


@cache
def allowed_functions() -> frozenset[str]:
    """Lower-case names of the scalar, aggregate and window functions a query may call.

    A built-in macro is SQL too (``pg_get_viewdef`` reads ``duckdb_views()``): one whose body
    would be refused, or calls a function that is, is refused itself, to a fixed point.
    """
    rows = (
        _parser()
        .execute(
            "SELECT lower(function_name), function_type, macro_definition FROM duckdb_functions() "
            "WHERE function_type IN ('scalar', 'aggregate', 'macro')"
        )
        .fetchall()
    )
    allowed = {name for name, _, _ in rows} - DENIED_FUNCTIONS | UNLISTED_FUNCTIONS
    macros = [(name, body) for name, kind, body in rows if kind == "macro" and body]
    changed = True
    while changed:
        changed = False
        for name, body in macros:
            if name in allowed and _body_refused(body, frozenset(allowed)):
                allowed.discard(name)
                changed = True
    return frozenset(allowed)


def _body_refused(body: str, functions: frozenset[str]) -> bool:
    try:
        statements = parse_tree(f"SELECT {body}")["statements"]
    except ClientError:
        return True
    return any(True for _ in _problems(statements, frozenset(), frozenset(), functions))


@cache
def catalog_names() -> frozenset[str]:
    """Lower-case names of every table, view and function a fresh DuckDB has (``pg_settings``,
    ``duckdb_views``, ``sqlite_master``...): no CTE may take one, lest a reference that the CTE
    does not cover reach the real one."""
    rows = (
        _parser()
        .execute(
            "SELECT lower(view_name) FROM duckdb_views() UNION SELECT lower(table_name) "
            "FROM duckdb_tables() UNION SELECT lower(function_name) FROM duckdb_functions()"
        )
        .fetchall()
    )
    return frozenset(name for (name,) in rows)


def _serialized(sql: str) -> dict:
    with _parser_lock:
        text = _parser().execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchone()[0]
    try:
        return json.loads(text)
    except RecursionError:
        raise ClientError(400, "invalid_sql", "the SQL is nested too deeply") from None


@cache
def reserved_columns() -> dict[str, list[str]]:
    """Columns of the lake's tables that are reserved words of the SQL grammar (``end``), each
    with the tables that have it: a query names them in double quotes (``"end"``), in DuckDB and
    Athena alike."""
    found: dict[str, list[str]] = {}
    for table in tables().values():
        for column in table.columns:
            if _serialized(f"SELECT {column.name} FROM t").get("error"):
                found.setdefault(column.name, []).append(table.name)
    return found


def pointer(sql: str, position: int) -> str:
    """DuckDB's way of showing where in ``sql`` an error is: ``LINE n: <text>`` and a caret
    under the character at ``position`` (0-based)."""
    before = sql[:position]
    number = before.count("\n") + 1
    start = before.rfind("\n") + 1
    end = sql.find("\n", position)
    line = sql[start : end if end >= 0 else len(sql)]
    column = position - start
    if column > 60:  # keep the caret on screen: show the line from shortly before it
        line, column = "..." + line[column - 40 :], 43
    prefix = f"LINE {number}: "
    return f"{prefix}{line[: column + 60]}\n{' ' * (len(prefix) + column)}^"


_NEAR = re.compile(r'syntax error at or near "([^"]+)"')


def parse_tree(sql: str) -> dict:
    """DuckDB's parse tree of ``sql`` as JSON; ``ClientError`` 400 when it does not parse,
    whose message shows where (``LINE n:`` and a caret) and says so when the word there is a
    column name that SQL reserves."""
    tree = _serialized(sql)
    if tree.get("error"):
        message = tree.get("error_message", "the SQL does not parse")
        if tree.get("error_type") == "not implemented":
            message = "only queries (SELECT, WITH, VALUES, DESCRIBE, SUMMARIZE) are allowed"
        else:
            near = _NEAR.search(message)
            reserved = reserved_columns().get(near.group(1).lower()) if near else None
            if reserved:
                word = near.group(1).lower()
                having = ", ".join(reserved[:-1]) + " and " if len(reserved) > 1 else ""
                message += (
                    f"\nHint: {word} is a reserved word: write the column of "
                    f'{having}{reserved[-1]} in double quotes, "{word}"'
                )
            if str(tree.get("position", "")).isdigit():
                message += "\n\n" + pointer(sql, int(tree["position"]))
        raise ClientError(400, "invalid_sql", message)
    return tree


def check_query(sql: str, views: frozenset[str]) -> None:
    """Refuses (``ClientError`` 400, code ``invalid_sql`` or ``not_allowed``) anything but one
    query over ``views`` that calls only allowed functions."""
    statements = parse_tree(sql)["statements"]
    if len(statements) != 1:
        raise ClientError(400, "invalid_sql", f"expected one statement, got {len(statements)}")
    try:
        problem, location = next(
            _problems(statements[0]["node"], views, frozenset(), allowed_functions()),
            (None, None),
        )
    except RecursionError:
        raise ClientError(400, "invalid_sql", "the SQL is nested too deeply") from None
    if problem is not None:
        if isinstance(location, int) and 0 <= location < len(sql):
            problem += "\n\n" + pointer(sql, location)
        raise ClientError(400, "not_allowed", problem)
    if "log_entries" in tables_named(sql):
        _check_level_names(statements[0]["node"], sql)


_LEVEL_COMPARISONS = frozenset(
    {"COMPARE_EQUAL", "COMPARE_NOTEQUAL", "COMPARE_IN", "COMPARE_NOT_IN"}
)
_LIKE_FUNCTIONS = frozenset({"~~", "!~~", "~~*", "!~~*", "like_escape", "ilike_escape"})
_LEVEL_SPELLINGS = {"WARNING": "WARN", "CRITICAL": "FATAL"}
"""logging's names that no level of the lake has, in any case: a comparison of anything made
from ``level`` (``upper(level)``, ``level::VARCHAR``, ``LIKE``, a CTE's alias of it) with one
of them matches nothing."""


def _check_level_names(node: object, sql: str) -> None:
    """A query that compares ``level`` with a text that is no level of the lake would silently
    match nothing (logging spells WARN as WARNING): refused, naming the lake's spelling. The
    column itself (``level = 'warn'``, ``IN``, ``<>``) must be compared with a level exactly;
    an expression of it (a function, a cast, ``LIKE``, an alias of a CTE or subquery) with a
    text that is logging's ``WARNING`` or ``CRITICAL`` in any case."""
    names = list(log_levels().values())
    derived = _level_aliases(node)
    for found in _walk(node):
        kind = found.get("type")
        if not isinstance(kind, str):
            continue
        if kind in _LEVEL_COMPARISONS:
            operands = found.get("children") or [found.get("left"), found.get("right")]
        elif kind == "FUNCTION" and found.get("function_name") in _LIKE_FUNCTIONS:
            operands = found.get("children") or []
        else:
            continue
        operands = [o for o in operands if isinstance(o, dict)]
        bare = kind in _LEVEL_COMPARISONS and any(_is_level(o) for o in operands)
        if not bare and not any(_mentions(o, derived) for o in operands):
            continue
        for operand in operands:
            value = operand.get("value")
            if operand.get("class") != "CONSTANT" or not isinstance(value, dict):
                continue
            text = value.get("value")
            if not isinstance(text, str) or text in names:
                continue
            if not bare and text.upper() not in _LEVEL_SPELLINGS:
                continue
            meant = _LEVEL_SPELLINGS.get(text.upper(), text.upper())
            hint = f" (you may mean '{meant}')" if meant in names else ""
            message = (
                f"log_entries.level is never '{text}'{hint}: levels are "
                f"{', '.join(names)} (OpenTelemetry's names; logging's WARNING is WARN, "
                "CRITICAL is FATAL); level_number >= 13 is WARN and above"
            )
            location = operand.get("query_location")
            if isinstance(location, int) and 0 <= location < len(sql):
                message += "\n\n" + pointer(sql, location)
            raise ClientError(400, "invalid_sql", message)


def _is_level(operand: dict) -> bool:
    return operand.get("class") == "COLUMN_REF" and operand["column_names"][-1].lower() == "level"


def _mentions(operand: dict, names: frozenset[str]) -> bool:
    """``operand`` reads a column of one of ``names`` (lower case)."""
    return any(
        found.get("class") == "COLUMN_REF" and found["column_names"][-1].lower() in names
        for found in _walk(operand)
    )


def _level_aliases(node: object) -> frozenset[str]:
    """``level`` and every alias of an expression made from it (``SELECT level AS lv``, an alias
    of an alias...), lower case: where the query's own names carry the level on."""
    names = frozenset({"level"})
    while True:
        more = names.union(
            found["alias"].lower()
            for found in _walk(node)
            if isinstance(found.get("alias"), str)
            and found.get("alias")
            and "class" in found
            and _mentions(found, names)
        )
        if more == names:
            return names
        names = more


def _walk(node: object) -> Iterator[dict]:
    """Every object of a parse tree."""
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


def tables_named(sql: str) -> frozenset[str]:
    """Lower-case names of the tables ``sql`` reads (what a CTE of the same name shadows
    included: counting them errs on the side of more); ``ClientError`` when it does not parse."""
    names: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if value.get("type") == "BASE_TABLE" and "table_name" in value:
                names.add(value["table_name"].lower())
            for child in value.values():
                walk(child)

    walk(parse_tree(sql)["statements"])
    return frozenset(names)


def _cte_problems(
    node: dict, views: frozenset[str], ctes: frozenset[str], functions: frozenset[str]
) -> Iterator[tuple[str, int | None] | frozenset[str]]:
    """The problems of a node's CTEs, each walked with the names DuckDB resolves to CTEs in its
    body (those defined before it, and itself when recursive); then, last, every CTE name the
    rest of the node sees."""
    for entry in (node.get("cte_map") or {}).get("map", []):
        name = entry["key"]
        if not IDENTIFIER.match(name) or name.lower() in catalog_names() | views:
            yield f"a CTE may not be named {name!r}: choose a name no table or function has", None
        recursive = entry["value"]["query"]["node"]["type"] == "RECURSIVE_CTE_NODE"
        own = frozenset({name.lower()}) if recursive else frozenset()
        yield from _problems(entry["value"], views, ctes | own, functions)
        ctes = ctes | {name.lower()}
    yield ctes


def _problems(
    value: object, views: frozenset[str], ctes: frozenset[str], functions: frozenset[str]
) -> Iterator[tuple[str, int | None]]:
    """Every reason to refuse found in ``value``, a piece of the parse tree, with where in the
    SQL it is when the tree says; ``ctes`` are the CTE names in scope there."""
    if isinstance(value, list):
        for item in value:
            yield from _problems(item, views, ctes, functions)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("type")
    children = value
    if "class" in value:
        for problem in _expression_problems(value, functions):
            yield problem, value.get("query_location")
    elif isinstance(kind, str) and kind.endswith("_NODE"):
        if kind not in QUERY_NODES:
            yield f"{kind.lower().removesuffix('_node')} is not allowed in a query", None
        for found in _cte_problems(value, views, ctes, functions):
            if isinstance(found, frozenset):
                ctes = found
            else:
                yield found
        children = {key: child for key, child in value.items() if key != "cte_map"}
    elif "sample" in value and "query_location" in value:  # a relation (TableRef)
        for problem in _relation_problems(value, views, ctes):
            yield problem, value.get("query_location")
        if kind == "TABLE_FUNCTION":  # its name was checked; walk its arguments only
            yield from _problems(value["function"].get("children", []), views, ctes, functions)
            return
    for child in children.values():
        yield from _problems(child, views, ctes, functions)


def _expression_problems(expression: dict, functions: frozenset[str]) -> Iterator[str]:
    kind = expression["class"]
    if kind not in EXPRESSION_CLASSES:
        yield f"{kind.lower()} expressions are not allowed"
    name = expression.get("function_name")
    if kind in ("FUNCTION", "WINDOW") and name.lower() not in functions:
        yield f"function {name} is not available to queries"


def _closest(name: str, names: frozenset[str]) -> str | None:
    """The name ``name`` was most likely meant to be: one it starts like (``logs``,
    ``log_entries``), else the most similar."""
    for length in range(len(name), 2, -1):
        starting = sorted(n for n in names if n.startswith(name[:length]))
        if starting:
            return starting[0]
    close = difflib.get_close_matches(name, sorted(names), 1, 0.6)
    return close[0] if close else None


def _relation_problems(
    relation: dict, views: frozenset[str], ctes: frozenset[str]
) -> Iterator[str]:
    kind = relation["type"]
    if kind == "SHOW_REF":
        if relation.get("query") is None and relation.get("table_name") not in SHOW_TABLES:
            yield "only SHOW TABLES, DESCRIBE and SUMMARIZE of a query or view are allowed"
        return
    if kind not in RELATIONS:
        yield f"{kind.lower()} relations are not allowed"
    elif kind == "BASE_TABLE":
        name = relation["table_name"]
        qualified = relation.get("schema_name") or relation.get("catalog_name")
        if qualified or name.lower() not in views | ctes:
            close = _closest(name.lower(), views | ctes)
            hint = f'\nDid you mean "{close}"?' if close and not qualified else ""
            yield f"{name!r} is not a table: query {', '.join(sorted(views))}{hint}"
    elif kind == "TABLE_FUNCTION":
        name = relation["function"].get("function_name", "")
        if name.lower() not in TABLE_FUNCTIONS:
            yield f"table function {name} is not available to queries"
