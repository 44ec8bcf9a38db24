"""The ``blocklake`` command: serve the embedded lake, run the demo, ask a lake questions.

What a user can get wrong (a busy port, an unreachable server, a bad key, a refused query) is
answered with one line on stderr and exit status 1; a malformed option with exit status 2.
The environment variables it reads are listed in ``blocklake.config``.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from blocklake.client import Client, QueryError, connect
from blocklake.config import Settings
from blocklake.format.schema import log_levels
from blocklake.query import span_tree

_display_type_rich = typer.core.TyperOption.display_type_rich


def _flag_type(self: typer.core.TyperOption, ctx: typer.Context) -> str | None:
    """No ``<bool>`` after a flag (--help, --version, --dry-run) in the help: it takes none."""
    return None if self.is_flag else _display_type_rich(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="blocklake: a serverless telemetry lakehouse.",
)
console = Console()
errors = Console(stderr=True)
DEFAULT_KEY = "blocklake-local"
FOLLOW_INTERVAL_S = 2.0
"""Seconds between two polls of ``blocklake logs --follow``."""
TREE_ROWS = 10_000
"""Paths of a call tree asked for at most (the server's default row cap)."""
FOLLOW_PAGE = 1000
"""Entries asked for at a time when ``blocklake logs --follow`` pages through new entries."""
LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
"""Python's logging names of the levels the lake names otherwise."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    arrow = "arrow"
    parquet = "parquet"


class Engine(StrEnum):
    duckdb = "duckdb"
    athena = "athena"


Endpoint = Annotated[
    str,
    typer.Option(envvar="BLOCKLAKE_ENDPOINT", help="URL of the blocklake API, local or deployed."),
]
ApiKey = Annotated[
    str, typer.Option(envvar="BLOCKLAKE_API_KEY", help="API key; it decides the tenant.")
]
Last = Annotated[str, typer.Option(help="Time range ending at --end (default now): 15m, 2h, 7d.")]
Begin = Annotated[
    str | None,
    typer.Option(help="Range start, ISO 8601, UTC unless it names a zone (overrides --last)."),
]
End = Annotated[str | None, typer.Option(help="Range end, ISO 8601 (default: now).")]
OutputFormat = Annotated[
    Format,
    typer.Option(
        "--format",
        help="table (for people), json, csv, arrow (IPC stream) or parquet.",
        case_sensitive=False,
    ),
]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the answer to this file instead of stdout."),
]


def visible(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, newlines faking a
    line, bidirectional overrides) written as escapes (``\\x1b``, ``\\n``, ``\\u202e``), so
    recorded data cannot move the cursor, clear the screen or forge a line."""

    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if char in _NAMED:
            return _NAMED[char]
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _CONTROL.sub(escaped, text)


def fail(message: str) -> typer.Exit:
    """Prints ``message`` as one line on stderr; raise what it returns (exit status 1)."""
    errors.print(f"[red]error:[/] {escape(visible(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _show_version(value: bool) -> None:
    if value:
        print(f"blocklake {package_version('blocklake')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """blocklake: a serverless telemetry lakehouse."""


def post_query(endpoint: str, api_key: str, document: dict) -> dict:
    """The JSON answer to a query document (``sql``, ``begin``, ``end``); ``QueryError``."""
    answer = connect(endpoint, api_key).request(document["sql"], document["begin"], document["end"])
    return json.loads(answer.body)


NUMERIC = ("BIGINT", "INTEGER", "DOUBLE", "DECIMAL", "FLOAT", "HUGEINT", "SMALLINT", "TINYINT")


def cell(value: object) -> str:
    """A value as the table format prints it: NULL blank, NaN and infinities as ``nan``,
    ``inf``, ``-inf``, times in ISO 8601, blobs as ``\\xAA`` escapes, nested values as JSON;
    control characters escaped (``visible``)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        text = value.isoformat()
    elif isinstance(value, bytes):
        text = "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)
    elif isinstance(value, pa.MonthDayNano):
        text = f"{value.months} months {value.days} days {value.nanoseconds} ns"
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    return visible(text)


def result_table(title: str, result: dict) -> Table:
    """The rows of a JSON answer (or ``arrow_result``'s) as a table, control characters of
    names and values escaped."""
    table = Table(title=visible(title), title_justify="left", title_style="bold")
    for column in result["columns"]:
        numeric = column["type"].split("(")[0] in NUMERIC
        table.add_column(escape(visible(column["name"])), justify="right" if numeric else "left")
    for row in result["rows"]:
        table.add_row(*(escape(cell(value)) for value in row))
    return table


def _sql_type(data_type: pa.DataType) -> str:
    if pa.types.is_floating(data_type):
        return "DOUBLE"
    if pa.types.is_integer(data_type):
        return "BIGINT"
    if pa.types.is_decimal(data_type):
        return "DECIMAL"
    return str(data_type)


def arrow_result(body: bytes) -> dict:
    """An Arrow answer in the shape of the JSON one (``columns``, ``rows``, ``row_count``), its
    values as Python has them: NaN and infinities stay floats, where JSON makes them null."""
    from blocklake.query.service import _column_values  # values Python cannot hold, as text

    table = pa.ipc.open_stream(body).read_all()
    columns = [_column_values(column) for column in table.columns]
    return {
        "columns": [{"name": f.name, "type": _sql_type(f.type)} for f in table.schema],
        "rows": [list(row) for row in zip(*columns, strict=True)],
        "row_count": table.num_rows,
    }


def parse_duration(text: str) -> int:
    """Nanoseconds of ``15m``, ``2h``, ``7d``, ``30s``; ``typer.BadParameter`` naming --last
    otherwise, and for a duration that is not positive."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        span = int(float(text[:-1]) * units[text[-1]] * 1_000_000_000)
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(
            f"{text!r}: expected a number and a unit, like 15m, 2h or 7d", param_hint="--last"
        ) from None
    if not span > 0:
        raise typer.BadParameter(
            f"{text!r}: expected a duration longer than zero, like 15m, 2h or 7d",
            param_hint="--last",
        )
    return span


def parse_instant(text: str, option: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time (UTC unless it names a zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected an ISO 8601 time like 2026-11-30T08:00:00Z", param_hint=option
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def time_range(last: str, begin: str | None, end: str | None) -> tuple[int, int]:
    """[begin, end) in nanoseconds: ``--begin`` or ``--last`` before ``--end`` (or now)."""
    end_ns = parse_instant(end, "--end") if end else time.time_ns()
    span = parse_duration(last)
    begin_ns = parse_instant(begin, "--begin") if begin else end_ns - span
    if begin_ns >= end_ns:
        raise typer.BadParameter("the range is empty: --begin must be before --end")
    return begin_ns, end_ns


def check_output(output: Path | None) -> None:
    """Refuses (one line, before any query runs) an ``--output`` that cannot be written: a
    directory, a missing or read-only directory, a read-only file."""
    if output is None:
        return
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise fail(f"--output {output}: is a directory; give a file name")
    if not parent.is_dir():
        raise fail(f"--output {output}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise fail(f"--output {output}: not writable")


def _ask(
    client: Client,
    sql: str,
    window: tuple[int, int],
    output_format: Format,
    output: Path | None,
    *,
    title: str = "",
    engine: Engine | None = None,
    max_rows: int | None = None,
) -> None:
    """Runs ``sql`` and writes the answer in ``output_format`` to ``output`` or stdout. The
    table format asks for Arrow, which keeps NaN and infinities that JSON cannot."""
    binary = output_format in (Format.arrow, Format.parquet)
    if binary and output is None and sys.stdout.isatty():
        raise fail(f"{output_format} is binary: give --output FILE, or redirect stdout")
    check_output(output)
    wire = "arrow" if output_format is Format.table else output_format.value
    try:
        answer = client.request(
            sql,
            *window,
            format=wire,
            engine=engine.value if engine else None,
            max_rows=max_rows,
        )
    except QueryError as error:
        raise fail(error.message) from None
    if output_format is Format.table:
        result = arrow_result(answer.body)
        heading = f"{title + ': ' if title else ''}{result['row_count']} rows"
        if output is None:
            console.print(result_table(heading, result))
        else:
            with _written(output), output.open("w") as file:
                Console(file=file, width=200).print(result_table(heading, result))
    elif output is None:
        typer.echo(answer.body, nl=False)
    else:
        with _written(output):
            output.write_bytes(answer.body)
    if answer.truncated_by:
        errors.print(f"note: the answer was cut by the {answer.truncated_by} limit")


class _written:
    """Turns a failure to write ``--output`` into one line (a disk filling up, say)."""

    def __init__(self, output: Path) -> None:
        self.output = output

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, trace: object) -> None:
        if isinstance(error, OSError):
            raise fail(f"--output {self.output}: {error.strerror or error}") from None


def _check_port(host: str, port: int) -> None:
    """``OSError`` (EADDRINUSE) when ``port`` is taken: checked before the data directory and
    its metadata are created, so a busy port leaves nothing behind."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        probe.bind((host, port))


@app.command()
def serve(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="BLOCKLAKE_DATA_DIR",
            help="Lake and SQLite directory (default ./blocklake-data).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8787,
) -> None:
    """Run the local lake: ingestion, conversion and query over HTTP, on the embedded defaults."""
    from blocklake.server.http import LocalServer

    environment = dict(os.environ)
    if data_dir is not None:
        environment["BLOCKLAKE_DATA_DIR"] = str(data_dir)
    try:
        _check_port(host, port)
        settings = Settings.from_env(environment)
        server = LocalServer(settings, host, port).start()
    except ValueError as error:  # a malformed BLOCKLAKE_* variable
        raise fail(str(error)) from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise fail(
                f"port {port} on {host} is in use: stop what listens there or choose --port"
            ) from None
        raise fail(f"cannot serve on {host}:{port}: {error.strerror or error}") from None
    keys = ", ".join(settings.api_keys)
    where = settings.data_dir.resolve()
    console.print(f"blocklake serving {where} at [bold]{server.url}[/] (API keys: {keys})")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="One SQL query (DuckDB dialect) over the views. SQL starting with a dash (a "
            "'-- comment') goes after '--': blocklake query [OPTIONS] -- '-- why\\nSELECT 1'.",
            show_default=False,
        ),
    ],
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    last: Last = "24h",
    begin: Begin = None,
    end: End = None,
    output_format: OutputFormat = Format.table,
    output: Output = None,
    engine: Annotated[
        Engine | None, typer.Option(help="duckdb (default) or athena (deployed only).")
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="Rows at most (up to the service's limit).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Say what the query would read and cost, without running it.")
    ] = False,
) -> None:
    """Run SQL against a blocklake API (local or deployed) and print or save the answer."""
    client = connect(endpoint, api_key)
    window = time_range(last, begin, end)
    if dry_run:
        if output_format not in (Format.table, Format.json):
            raise fail(f"--dry-run answers JSON: --format {output_format} cannot hold it")
        check_output(output)
        try:
            plan = client.dry_run(sql, *window, engine=engine.value if engine else None)
        except QueryError as error:
            raise fail(error.message) from None
        text = json.dumps(plan, indent=2) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            with _written(output):
                output.write_text(text)
        return
    _ask(client, sql, window, output_format, output, engine=engine, max_rows=max_rows)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _levels_from(level: str) -> list[str]:
    names = list(log_levels().values())  # most severe first
    name = LEVEL_ALIASES.get(level.upper(), level.upper())
    if name not in names:
        aliases = ", ".join(f"{alias} ({name})" for alias, name in LEVEL_ALIASES.items())
        raise typer.BadParameter(
            f"{level!r}: expected one of {', '.join(names)}, or {aliases}", param_hint="--level"
        )
    return names[: names.index(name) + 1]


LOG_COLUMNS = ("time", "level", "target", "message", "process_id")


def _log_order(direction: str) -> str:
    """Every column, so that entries of one instant have one order, and DESC is ASC reversed."""
    nulls = "NULLS FIRST" if direction == "ASC" else "NULLS LAST"
    return ", ".join(f"{column} {direction} {nulls}" for column in LOG_COLUMNS)


def _log_filters(level: str | None, text: str | None, process: str | None) -> list[str]:
    conditions = []
    if level:
        conditions.append(f"level IN ({', '.join(map(_quoted, _levels_from(level)))})")
    if text:
        conditions.append(f"contains(lower(message), lower({_quoted(text)}))")
    if process:
        conditions.append(f"starts_with(process_id, {_quoted(process)})")
    return conditions


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def logs_sql(level: str | None, text: str | None, process: str | None, limit: int) -> str:
    """The newest ``limit`` log entries at ``level`` or more severe, containing ``text``
    (case-insensitive), of processes whose id starts with ``process``, newest first."""
    return (
        f"SELECT {', '.join(LOG_COLUMNS)} FROM log_entries"
        f"{_where(_log_filters(level, text, process))} ORDER BY {_log_order('DESC')} LIMIT {limit}"
    )


def logs_page_sql(
    level: str | None,
    text: str | None,
    process: str | None,
    since: str | None,
    skip: int,
    limit: int,
) -> str:
    """``limit`` entries oldest first, from ``since`` (ISO 8601, or the range's start) on,
    past the first ``skip`` entries of that instant (those already printed)."""
    conditions = _log_filters(level, text, process)
    if since:
        conditions.append(f"time >= {_quoted(since)}::TIMESTAMPTZ")
    return (
        f"SELECT {', '.join(LOG_COLUMNS)} FROM log_entries{_where(conditions)} "
        f"ORDER BY {_log_order('ASC')} LIMIT {limit} OFFSET {skip}"
    )


def _print_logs(rows: list[list]) -> None:
    """Entries oldest first, one line each: control characters of the recorded text escaped
    (``visible``), so a message cannot clear the screen or fake another line."""
    for moment, level, target, message, process_id in rows:
        console.print(
            f"{escape(visible(str(moment)))} {escape(visible(str(level))):<5} "
            f"[dim]{escape(visible(target or ''))}[/] {escape(visible(message or ''))} "
            f"[dim]{escape(visible((process_id or '')[:8]))}[/]",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def logs(
    level: Annotated[
        str | None, typer.Option(help="Only this level and more severe: ERROR, WARN, INFO...")
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="Only messages containing this (any case).")
    ] = None,
    process: Annotated[
        str | None, typer.Option(help="Only processes whose id starts with this.")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            help="The newest N entries (with --follow, the first screen: every later entry "
            "is printed).",
            min=1,
        ),
    ] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries until Ctrl-C.")
    ] = False,
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    last: Last = "1h",
    begin: Begin = None,
    end: End = None,
) -> None:
    """Print log entries, oldest first, filtered by level, text and process."""
    client = connect(endpoint, api_key)
    window = time_range(last, begin, end)
    if level:
        _levels_from(level)

    def rows_of(sql: str) -> list[list]:
        try:
            return json.loads(client.request(sql, *window).body)["rows"]
        except QueryError as error:
            raise fail(error.message) from None

    try:
        rows = rows_of(logs_sql(level, text, process, limit))[::-1]
        _print_logs(rows)
        if not follow:
            return
        # Where the next poll starts: the newest instant printed, and how many entries of it
        # were (all of them: the first screen printed the last ones of the instant in order).
        since, skip = (rows[-1][0], 0) if rows else (None, 0)
        if rows:
            skip = sum(1 for row in rows if row[0] == since)
            if skip == len(rows):  # the screen may have held only part of that instant
                at = f"time = {_quoted(since)}::TIMESTAMPTZ"
                count = [*_log_filters(level, text, process), at]
                skip = rows_of(f"SELECT count(*) FROM log_entries{_where(count)}")[0][0]
        while True:
            follow_sleep(FOLLOW_INTERVAL_S)
            window = (window[0], time.time_ns() + 1)
            while True:  # every new entry, a page at a time
                page = rows_of(logs_page_sql(level, text, process, since, skip, FOLLOW_PAGE))
                _print_logs(page)
                if page:
                    newest = page[-1][0]
                    same = sum(1 for row in page if row[0] == newest)
                    since, skip = (since, skip + len(page)) if newest == since else (newest, same)
                if len(page) < FOLLOW_PAGE:
                    break
    except KeyboardInterrupt:
        return


follow_sleep = time.sleep
"""How ``logs --follow`` waits between polls (tests replace it)."""


@app.command()
def spans(
    slowest: Annotated[int, typer.Option(help="The N longest spans.", min=1)] = 20,
    name: Annotated[str | None, typer.Option(help="Only spans of this name.")] = None,
    process: Annotated[
        str | None, typer.Option(help="Only processes whose id starts with this.")
    ] = None,
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    last: Last = "1h",
    begin: Begin = None,
    end: End = None,
    output_format: OutputFormat = Format.table,
    output: Output = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="The merged call tree per process: count, total and self time of each path "
            "of span names (--format json or csv: the span_tree view's rows).",
        ),
    ] = False,
    folded: Annotated[
        bool,
        typer.Option(
            "--folded",
            help="The call tree as folded stacks (self nanoseconds per path), which "
            "flamegraph.pl and speedscope read.",
        ),
    ] = False,
) -> None:
    """The slowest spans (thread and async) in the range, longest first; or (--tree) the
    merged call tree per process, or (--folded) its folded stacks for flame graphs."""
    if tree or folded:
        if name:
            raise typer.BadParameter("a call tree takes every span name", param_hint="--name")
        sql = span_tree.tree_sql(process)
        window = time_range(last, begin, end)
        if folded or output_format is Format.table:
            _call_tree(connect(endpoint, api_key), sql, window, folded, output)
        else:
            _ask(connect(endpoint, api_key), sql, window, output_format, output, title="Call tree")
        return
    conditions = []
    if name:
        conditions.append(f"name = {_quoted(name)}")
    if process:
        conditions.append(f"starts_with(process_id, {_quoted(process)})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    parts = [
        f"SELECT name, round(duration_ns / 1e6, 3) AS ms, \"begin\", target, '{kind}' AS kind, "
        f"process_id, span_id FROM {kind}_spans{where}"
        for kind in ("thread", "async")
    ]
    sql = " UNION ALL ".join(parts) + f" ORDER BY ms DESC LIMIT {slowest}"
    window = time_range(last, begin, end)
    _ask(connect(endpoint, api_key), sql, window, output_format, output, title="Slowest spans")


def _call_tree(
    client: Client, sql: str, window: tuple[int, int], folded: bool, output: Path | None
) -> None:
    """Prints the call tree (rich) or its folded stacks, to ``output`` or stdout."""
    check_output(output)
    try:
        answer = client.request(sql, *window, format="arrow", max_rows=TREE_ROWS)
    except QueryError as error:
        raise fail(error.message) from None
    rows = arrow_result(answer.body)["rows"]
    if folded:
        text = "".join(line + "\n" for line in span_tree.folded(rows))
        if output is None:
            typer.echo(text, nl=False)
        else:
            with _written(output):
                output.write_text(text)
    else:
        trees = [_rich_tree(key, root) for key, root in span_tree.nest(rows).items()]
        if output is None:
            console.print(*(trees or ["no spans in the range"]))
        else:
            with _written(output), output.open("w") as file:
                Console(file=file, width=200).print(*trees)
    if answer.truncated_by:
        errors.print(f"note: the tree was cut by the {answer.truncated_by} limit")


def _rich_tree(key: tuple[str, str], root: span_tree.Node) -> Tree:
    process_id, kind = key
    heading = f"[bold]{escape(visible(process_id))}[/bold] {kind} spans"
    tree = Tree(f"{heading}: {root.count} root spans, {span_tree.duration(root.total_ns)}")
    stack = [(tree, child) for child in reversed(root.ordered())]
    while stack:  # depth first, without recursion: a tree may be hundreds of levels deep
        branch, node = stack.pop()
        still = f", {node.unended} unended" if node.unended else ""
        label = (
            f"{escape(visible(node.name))}  [dim]{node.count}x{still}[/dim]  "
            f"{span_tree.duration(node.total_ns)} "
            f"[dim](self {span_tree.duration(node.self_ns)})[/dim]"
        )
        child_branch = branch.add(label)
        stack.extend((child_branch, child) for child in reversed(node.ordered()))
    return tree


@app.command()
def processes(
    limit: Annotated[int, typer.Option(help="The N most recently started.", min=1)] = 50,
    exe: Annotated[
        str | None, typer.Option(help="Only executables whose path contains this.")
    ] = None,
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    last: Last = "24h",
    begin: Begin = None,
    end: End = None,
    output_format: OutputFormat = Format.table,
    output: Output = None,
) -> None:
    """Processes that started in the range, newest first, with their properties."""
    from blocklake.query.views import timestamp_literal  # both bounds exact, as the views'

    window = time_range(last, begin, end)
    start, stop = (timestamp_literal(t) for t in window)
    conditions = [f"start_time >= {start}", f"start_time < {stop}"]
    if exe:
        conditions.append(f"contains(exe, {_quoted(exe)})")
    sql = (
        "SELECT process_id, exe, username, computer, start_time, parent_process_id, properties "
        f"FROM processes WHERE {' AND '.join(conditions)} ORDER BY start_time DESC LIMIT {limit}"
    )
    _ask(connect(endpoint, api_key), sql, window, output_format, output, title="Processes")


attachments_app = typer.Typer(
    no_args_is_help=True, help="Attachments (crash dumps, images, video): list, download."
)
app.add_typer(attachments_app, name="attachments")


@attachments_app.command("list")
def attachments_list(
    name: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    limit: Annotated[int, typer.Option(help="The N most recent.", min=1)] = 50,
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    last: Last = "24h",
    begin: Begin = None,
    end: End = None,
    output_format: OutputFormat = Format.table,
    output: Output = None,
) -> None:
    """Attachments recorded in the range, newest first; download one with `get`."""
    where = f" WHERE contains(name, {_quoted(name)})" if name else ""
    sql = (
        "SELECT time, attachment_id, name, content_type, size, process_id "
        f"FROM attachments{where} ORDER BY time DESC LIMIT {limit}"
    )
    window = time_range(last, begin, end)
    _ask(connect(endpoint, api_key), sql, window, output_format, output, title="Attachments")


@attachments_app.command("get")
def attachments_get(
    attachment_id: Annotated[str, typer.Argument(help="Its attachment_id (or its link).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File or directory to write to (default: its name, here)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing file of the attachment's name (default: refuse)."
        ),
    ] = False,
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
) -> None:
    """Download an attachment, checked against its size and SHA-256. A file of the
    attachment's own name (chosen by its uploader) is never replaced unless ``--force``;
    ``-o FILE`` replaces FILE."""
    attachment_id = attachment_id.strip().rsplit("/", 1)[-1]
    destination = output if output is not None else Path(".")
    parent = destination if destination.is_dir() else destination.parent
    if not parent.is_dir():
        raise fail(f"--output {destination}: the directory {parent} does not exist")
    try:
        download = connect(endpoint, api_key).download_attachment(
            attachment_id, destination, overwrite=True if force else None
        )
    except QueryError as error:
        raise fail(error.message) from None
    errors.print(
        f"{download.size} bytes ({download.content_type}, sha256 {download.sha256}) "
        f"written to {escape(visible(str(download.path)))}",
        highlight=False,
    )


@app.command("api-key")
def api_key_command(
    secret_arn: Annotated[
        str, typer.Option(help="The stack's ApiKeysSecretArn output.", show_default=False)
    ],
    tenant: Annotated[str, typer.Option(help="Tenant the key writes and reads as.")],
) -> None:
    """Create an API key for a tenant of a deployed blocklake and print it (shown only once)."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ModuleNotFoundError:
        raise fail("no key created: needs the aws extra: pip install 'blocklake[aws]'") from None
    from blocklake.api_keys import create_api_key, secret_region

    try:
        client = boto3.client("secretsmanager", region_name=secret_region(secret_arn))
        key = create_api_key(client, secret_arn, tenant)
    except (ValueError, BotoCoreError, ClientError) as error:
        raise fail(f"no key created: {error}") from None
    console.print(f"API key for tenant {tenant} (works within 5 minutes):")
    print(key)


@app.command()
def smoke(
    endpoint: Endpoint = "http://127.0.0.1:8787",
    api_key: ApiKey = DEFAULT_KEY,
    engine: Annotated[
        list[Engine], typer.Option(help="Engine to check the counts on (repeatable).")
    ] = [Engine.duckdb],  # noqa: B006 (typer reads the default, never mutates it)
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait for each step.")] = 120.0,
) -> None:
    """Check a running blocklake end to end: record through the SDK, wait until queryable,
    check every count, time a query per engine."""
    from blocklake.smoke import SmokeFailed, run_smoke

    try:
        engines = tuple(e.value for e in engine)
        run_smoke(endpoint, api_key, engines=engines, timeout_s=timeout, say=console.print)
    except SmokeFailed as error:
        raise fail(f"smoke test failed: {error}") from None


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the lake here (default: a temporary directory).")
    ] = None,
    threads: Annotated[int, typer.Option(help="Threads of the sample service.")] = 4,
    requests: Annotated[int, typer.Option(help="Orders handled by each thread.")] = 250,
) -> None:
    """Record a multi-threaded sample service, ingest, convert and query it, show the results."""
    from blocklake import sdk
    from blocklake.demo import DEMO_QUERIES, Workload, run_workload
    from blocklake.server.http import LocalServer

    directory = data_dir or Path(tempfile.mkdtemp(prefix="blocklake-demo-"))
    settings = Settings.from_env({**os.environ, "BLOCKLAKE_DATA_DIR": str(directory)})
    with LocalServer(settings, port=0) as server:
        console.print(f"[bold]blocklake demo[/]: local lake at {server.url}, data in {directory}")
        sdk.init(
            server.url,
            next(iter(settings.api_keys)),
            properties={"app": "blocklake-demo"},
            level="DEBUG",
        )
        started = time.perf_counter()
        run_workload(Workload(threads=threads, requests_per_thread=requests))
        recorded = time.perf_counter() - started
        sdk.flush()
        server.lake.wait_converted()
        sdk.shutdown()
        ready = time.perf_counter() - started
        console.print(
            f"recorded {threads * requests} orders on {threads} threads in {recorded:.2f} s; "
            f"ingested and converted to Parquet {ready - recorded:.2f} s later"
        )
        now = time.time_ns()
        for title, sql in DEMO_QUERIES.items():
            result = post_query(
                server.url,
                next(iter(settings.api_keys)),
                {"sql": sql, "begin": now - 3600 * 10**9, "end": now + 10**9},
            )
            console.print(result_table(title, result))
        if server.lake.failed_conversions:
            console.print(f"[red]{server.lake.failed_conversions} blocks failed to convert[/]")
            raise typer.Exit(1)
