"""The ``blocklake`` command line: the demo end to end, every output format, the log, span and
process commands, and one-line messages when things go wrong."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pa_parquet
import pytest
from typer.testing import CliRunner

from blocklake import cli, sdk
from blocklake.cli import app
from blocklake.config import Settings
from blocklake.server.http import LocalServer
from tests.helpers import http_event, log_block, process_document, stream_document
from tests.query.conftest import HOUR, T0, QueryLake

runner = CliRunner()
RANGE = ["--begin", "2026-11-20T08:00:00Z", "--end", "2026-11-20T12:00:00Z"]


@pytest.fixture
def served(settings: Settings, context: object):
    """A local server whose lake holds acme's log entries at 1 h and 2 h past T0."""
    with LocalServer(settings, port=0) as server:
        lake = QueryLake(settings, context, server.lake)
        lake.record("acme", [1, 2])
        yield ["--endpoint", server.url, "--api-key", "key-acme"]


def _free_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_records_ingests_converts_and_queries(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["demo", "--data-dir", str(tmp_path), "--threads", "2", "--requests", "40"]
    )
    sdk.shutdown()
    assert result.exit_code == 0, result.output
    for title in ("Slowest spans", "Span summary", "Log entries by level", "Metrics"):
        assert title in result.output
    assert "handle_order" in result.output and "order_latency" in result.output
    assert "recorded 80 orders on 2 threads" in result.output
    assert list(tmp_path.glob("tables/thread_spans/tenant=local/data/*/*.parquet"))


def test_query_names_an_unreachable_endpoint() -> None:
    port = _free_port()
    result = runner.invoke(app, ["query", "SELECT 1", "--endpoint", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "cannot reach" in result.output and str(port) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_query_rejects_a_malformed_duration() -> None:
    result = runner.invoke(app, ["query", "SELECT 1", "--last", "ten minutes"])
    assert result.exit_code == 2
    assert "15m" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("blocklake 0.")


@pytest.mark.parametrize("command", ["serve", "query", "logs", "spans", "processes", "demo"])
def test_every_option_has_help(command: str) -> None:
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    for parameter in click_command.params:
        if parameter.param_type_name == "option" and parameter.name != "help":
            assert parameter.help, f"{command} --{parameter.name} has no help"


def test_a_bad_key_is_one_line(served: list[str]) -> None:
    args = [*served[:2], "--api-key", "wrong"]
    result = runner.invoke(app, ["query", "SELECT 1", *args])
    assert result.exit_code == 1
    assert "401" in result.output and "BLOCKLAKE_API_KEY" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_refused_query_is_one_message(served: list[str]) -> None:
    result = runner.invoke(app, ["query", "SELECT level FROM logs", *served, *RANGE])
    assert result.exit_code == 1
    assert 'Did you mean "log_entries"?' in result.output and "Traceback" not in result.output


SQL = "SELECT message, properties FROM log_entries ORDER BY time"


def test_query_formats_table_json_and_csv(served: list[str]) -> None:
    result = runner.invoke(app, ["query", SQL, *served, *RANGE])
    assert result.exit_code == 0, result.output
    assert "2 rows" in result.output and "at 2h" in result.output
    result = runner.invoke(app, ["query", SQL, *served, *RANGE, "--format", "json"])
    assert json.loads(result.output)["rows"] == [["at 1h", {}], ["at 2h", {}]]
    result = runner.invoke(app, ["query", SQL, *served, *RANGE, "--format", "csv"])
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows == [["message", "properties"], ["at 1h", "{}"], ["at 2h", "{}"]]


@pytest.mark.parametrize("output_format", ["arrow", "parquet"])
def test_query_binary_formats_to_a_file(
    served: list[str], tmp_path: Path, output_format: str
) -> None:
    target = tmp_path / f"answer.{output_format}"
    result = runner.invoke(
        app,
        ["query", SQL, *served, *RANGE, "--format", output_format, "--output", str(target)],
    )
    assert result.exit_code == 0, result.output
    if output_format == "arrow":
        table = pa.ipc.open_stream(target.read_bytes()).read_all()
    else:
        table = pa_parquet.read_table(target)
    assert table.column("message").to_pylist() == ["at 1h", "at 2h"]


def test_query_says_when_rows_were_cut(served: list[str]) -> None:
    result = runner.invoke(
        app, ["query", "SELECT * FROM range(50)", *served, *RANGE, "--max-rows", "5"]
    )
    assert result.exit_code == 0
    assert "5 rows" in result.output and "cut by the max_rows limit" in result.output


def test_last_reaches_back_from_end(served: list[str]) -> None:
    sql = "SELECT count(*) FROM log_entries"
    args = ["--end", "2026-11-20T10:30:00Z", "--format", "json"]
    result = runner.invoke(app, ["query", sql, *served, *args, "--last", "1h"])
    assert json.loads(result.output)["rows"] == [[1]]
    result = runner.invoke(app, ["query", sql, *served, *args, "--last", "3h"])
    assert json.loads(result.output)["rows"] == [[2]]


def test_logs_filters_by_level_text_and_process(served: list[str]) -> None:
    result = runner.invoke(app, ["logs", *served, *RANGE])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(" INFO ")[1].split()[1:3] for line in lines] == [
        ["at", "1h"],
        ["at", "2h"],
    ]
    result = runner.invoke(app, ["logs", *served, *RANGE, "--text", "AT 2H"])
    assert "at 2h" in result.output and "at 1h" not in result.output
    result = runner.invoke(app, ["logs", *served, *RANGE, "--level", "warn"])
    assert result.output.strip() == ""
    result = runner.invoke(app, ["logs", *served, *RANGE, "--process", "no-such"])
    assert result.output.strip() == ""
    result = runner.invoke(app, ["logs", *served, *RANGE, "--level", "LOUD"])
    assert result.exit_code == 2 and "ERROR" in result.output


def test_logs_follow_prints_new_entries_once(
    served: list[str], settings: Settings, context: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[int] = []

    def sleep(seconds: float) -> None:
        polls.append(1)
        if len(polls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "follow_sleep", sleep)
    result = runner.invoke(app, ["logs", "--follow", *served, "--begin", "2026-11-20T08:00:00Z"])
    assert result.exit_code == 0, result.output
    assert result.output.count("at 1h") == 1 and result.output.count("at 2h") == 1


def test_spans_and_processes(served: list[str]) -> None:
    result = runner.invoke(app, ["spans", "--slowest", "3", *served, *RANGE, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [c["name"] for c in document["columns"]][:3] == ["name", "ms", "begin"]
    result = runner.invoke(app, ["processes", *served, *RANGE, "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["rows"]
    assert row[1:4] == ["/usr/bin/game", "tester", "box"] and row[-1] == {"version": "1.2"}


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            app,
            ["serve", "--port", str(port)],
            env={"BLOCKLAKE_DATA_DIR": str(tmp_path / "from-env")},
        )
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "from-env").exists()  # the port is checked before the lake is made


def test_serve_honours_blocklake_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", stop)
    result = runner.invoke(
        app, ["serve", "--port", "0"], env={"BLOCKLAKE_DATA_DIR": str(tmp_path / "from-env")}
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "metadata.db").exists()


def test_times_outside_the_range_are_not_counted() -> None:
    assert cli.time_range("1h", None, "2026-11-20T09:00:00Z") == (T0, T0 + HOUR)


def test_query_dry_run_and_an_engine_the_server_lacks(served: list[str]) -> None:
    result = runner.invoke(app, ["query", SQL, *served, *RANGE, "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert (plan["dry_run"], plan["files"], plan["rows"]) == (True, 2, 2)
    result = runner.invoke(app, ["query", SQL, *served, *RANGE, "--engine", "athena"])
    assert result.exit_code == 1
    assert "athena is not configured on this server" in result.output


# What a new user found (issue 14's follow-up).
@pytest.fixture
def served_lake(settings: Settings, context: object):
    """``served`` and the lake behind it, to record more while a command runs."""
    with LocalServer(settings, port=0) as server:
        lake = QueryLake(settings, context, server.lake)
        lake.record("acme", [1, 2])
        yield ["--endpoint", server.url, "--api-key", "key-acme"], lake


def _burst(lake: QueryLake, count: int, at_h: float = 3) -> list[str]:
    """``count`` entries one nanosecond apart (most in one microsecond), in one block."""
    process = process_document(start_time_ns=T0, start_ticks=0)
    stream = stream_document(process["process_id"])
    for path, document in (("/v1/processes", process), ("/v1/streams", stream)):
        assert (
            lake.ingest(http_event(path, document, tenant="acme"), lake.context)["statusCode"]
            == 201
        )
    messages = [f"burst {i:03d}" for i in range(count)]
    block = log_block(stream["stream_id"], messages, first_tick=int(at_h * HOUR))
    event = http_event("/v1/blocks", block, tenant="acme")
    assert lake.ingest(event, lake.context)["statusCode"] == 201
    lake.lake.wait_converted()
    return messages


@pytest.mark.parametrize(("count", "limit", "page"), [(500, 100, 64), (30, 1, 1000), (7, 3, 2)])
def test_logs_follow_prints_every_new_entry_of_a_burst(
    served_lake: tuple[list[str], QueryLake],
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    limit: int,
    page: int,
) -> None:
    served, lake = served_lake
    polls: list[int] = []
    burst: list[str] = []

    def sleep(seconds: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            burst.extend(_burst(lake, count))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "follow_sleep", sleep)
    monkeypatch.setattr(cli, "FOLLOW_PAGE", page)
    args = ["logs", "--follow", *served, "--begin", "2026-11-20T08:00:00Z", "--limit", str(limit)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = [line.split(" test ")[1].rsplit(" ", 1)[0] for line in result.output.splitlines()]
    first = ["at 1h", "at 2h"][-limit:]
    assert printed == [*first, *burst]


def test_logs_follow_after_a_first_screen_inside_one_instant(
    served_lake: tuple[list[str], QueryLake], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, lake = served_lake
    before = _burst(lake, 5, at_h=2.5)  # 5 entries within one microsecond
    polls: list[int] = []

    def sleep(seconds: float) -> None:
        polls.append(1)
        if len(polls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "follow_sleep", sleep)
    args = ["logs", "--follow", *served, "--begin", "2026-11-20T08:00:00Z", "--limit", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for message in before[-2:]:
        assert result.output.count(message) == 1
    assert "burst 000" not in result.output and "at 2h" not in result.output


def test_control_characters_are_escaped_in_human_output_only(
    served_lake: tuple[list[str], QueryLake],
) -> None:
    served, lake = served_lake
    hostile = "\x1b[2J\x1b[31mred\n2026-11-20T09:00:00+00:00 ERROR fake"
    lake.record("acme", [3], prefix=hostile)
    sql = "SELECT message FROM log_entries WHERE message LIKE '%red%'"
    for args in (["logs", *served, *RANGE], ["query", sql, *served, *RANGE]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\\x1b[2J\\x1b[31mred\\n2026" in result.output
        assert "\nfake" not in result.output and "ERROR fake" in result.output
    result = runner.invoke(app, ["query", sql, *served, *RANGE, "--format", "json"])
    assert json.loads(result.output)["rows"] == [[f"{hostile} 3h"]]
    result = runner.invoke(app, ["query", sql, *served, *RANGE, "--format", "csv"])
    assert list(csv.reader(io.StringIO(result.output)))[1] == [f"{hostile} 3h"]


def test_visible_escapes_controls_and_bidi_overrides() -> None:
    assert cli.visible("a\tb\r\x00\x7f\x9b\u202eZ ok é") == "a\\tb\\r\\x00\\x7f\\x9b\\u202eZ ok é"


def test_the_table_prints_nan_and_infinities_apart_from_null(served: list[str]) -> None:
    sql = (
        "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::FLOAT AS c, NULL::DOUBLE AS d, "
        "0.5 AS e"
    )
    result = runner.invoke(app, ["query", sql, *served, *RANGE])
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.output.splitlines() if "nan" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["nan", "inf", "-inf", "", "0.5"]


def test_the_table_prints_every_type(served: list[str]) -> None:
    sql = (
        "SELECT '\\xAA'::BLOB AS b, 'infinity'::DATE AS d, INTERVAL 3 DAYS AS i, "
        "MAP {'k': 'v'} AS m, 18446744073709551615::UBIGINT AS u"
    )
    result = runner.invoke(app, ["query", sql, *served, *RANGE])
    assert result.exit_code == 0, result.output
    for text in ("\\xAA", "infinity", "3 days", '{"k": "v"}', "18446744073709551615"):
        assert text in result.output


def test_dry_run_writes_its_plan_to_output_or_refuses_a_format(
    served: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "plan.json"
    args = ["query", SQL, *served, *RANGE, "--dry-run"]
    result = runner.invoke(app, [*args, "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["dry_run"] is True and result.output == ""
    result = runner.invoke(app, [*args, "--format", "json"])
    assert json.loads(result.output)["dry_run"] is True
    for output_format in ("csv", "parquet"):
        result = runner.invoke(app, [*args, "--format", output_format, "-o", str(target)])
        assert result.exit_code == 1
        assert "--dry-run answers JSON" in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["missing/answer.csv", "."])
def test_a_bad_output_path_is_refused_before_querying(tmp_path: Path, where: str) -> None:
    port = _free_port()  # nobody listens: the refusal comes before any request
    target = tmp_path / where
    result = runner.invoke(
        app,
        ["query", "SELECT 1", "--endpoint", f"http://127.0.0.1:{port}", "-o", str(target)],
    )
    assert result.exit_code == 1
    assert "--output" in result.output and "cannot reach" not in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_sql_starting_with_a_comment_goes_after_a_double_dash(served: list[str]) -> None:
    args = ["query", *served, *RANGE, "--format", "json", "--", "-- why\nSELECT 42 AS n"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == [[42]]
    help_text = runner.invoke(app, ["query", "--help"]).output
    assert "comment" in help_text


@pytest.mark.parametrize("last", ["-5m", "0m", "0s"])
def test_a_last_not_positive_is_refused_naming_it(last: str) -> None:
    result = runner.invoke(app, ["query", "SELECT 1", f"--last={last}"])
    assert result.exit_code == 2
    assert "--last" in result.output and "longer than zero" in result.output


@pytest.mark.parametrize("level", ["WARNING", "warn", "CRITICAL", "fatal"])
def test_logs_accepts_python_s_level_names(served: list[str], level: str) -> None:
    result = runner.invoke(app, ["logs", *served, *RANGE, "--level", level])
    assert result.exit_code == 0, result.output


def test_help_shows_no_type_after_flags() -> None:
    for args in (["--help"], ["query", "--help"], ["logs", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "<bool>" not in result.output


def test_a_client_hanging_up_is_no_traceback_on_the_server_console() -> None:
    from blocklake.server.http import _RequestHandler
    from blocklake.server.lake import HttpResponse

    class HungUp(io.BytesIO):
        def write(self, data: object) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    handler = _RequestHandler.__new__(_RequestHandler)
    handler.wfile = HungUp()
    handler.request_version = "HTTP/1.1"
    handler.requestline = "POST /v1/query HTTP/1.1"
    handler.command = "POST"
    handler.client_address = ("127.0.0.1", 1)
    handler.close_connection = False
    handler._respond(HttpResponse(200, {"Content-Type": "text/csv"}, b"x" * 100))
    assert handler.close_connection is True


def test_processes_keeps_nanosecond_bounds_exact(
    served: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.time, "time_ns", lambda: T0 + 1)  # the process started at T0
    result = runner.invoke(app, ["processes", *served, "--last", "1h", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["rows"]) == 1
    monkeypatch.setattr(cli.time, "time_ns", lambda: T0)
    result = runner.invoke(app, ["processes", *served, "--last", "1h", "--format", "json"])
    assert json.loads(result.output)["rows"] == []
