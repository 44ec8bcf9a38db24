"""The ``blocklake`` command line: the demo end to end, and clear messages when things go wrong."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from blocklake import sdk
from blocklake.cli import app

runner = CliRunner()


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
    assert list(tmp_path.glob("tables/thread_spans/tenant=local/date=*/hour=*/*.parquet"))


def test_query_names_an_unreachable_endpoint() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["query", "SELECT 1", "--endpoint", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "cannot reach" in result.output and str(port) in result.output


def test_query_rejects_a_malformed_duration() -> None:
    result = runner.invoke(app, ["query", "SELECT 1", "--last", "ten minutes"])
    assert result.exit_code == 2
    assert "15m" in result.output
