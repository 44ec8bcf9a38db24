"""``blocklake smoke`` against the local server: it passes on a working lake, and fails with a
one-line reason on a wrong key, an unreachable endpoint, or a lake that never converts."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blocklake import sdk
from blocklake.cli import app
from blocklake.config import Settings
from blocklake.server.http import LocalServer
from blocklake.server.lake import LocalLake
from blocklake.smoke import LOGS, METRICS, SPANS, THREADS, SmokeFailed, run_smoke
from tests.helpers import KEYS

runner = CliRunner()
KEY = next(iter(KEYS))


@pytest.fixture
def server(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "lake", api_keys=dict(KEYS))
    with LocalServer(settings, port=0) as running:
        yield running
    sdk.shutdown()


def test_smoke_passes_on_a_working_lake_and_says_what_it_did(server: LocalServer) -> None:
    result = runner.invoke(app, ["smoke", "--endpoint", server.url, "--api-key", KEY])
    assert result.exit_code == 0, result.output
    lines = result.output
    assert f"recorded {THREADS * LOGS} logs, {THREADS * METRICS} metric values" in lines
    assert f"thread_spans {THREADS * SPANS}/{THREADS * SPANS}" in lines
    assert re.search(r"duckdb: 3 count queries in \d+\.\d\d s", lines)
    assert "smoke test passed" in lines


def test_a_second_run_counts_only_its_own_events(server: LocalServer) -> None:
    lines: list[str] = []
    run_smoke(server.url, KEY, say=lines.append)
    run_smoke(server.url, KEY, say=lines.append)
    assert sum("smoke test passed" in line for line in lines) == 2


def test_a_wrong_key_fails_at_once(server: LocalServer) -> None:
    result = runner.invoke(app, ["smoke", "--endpoint", server.url, "--api-key", "nope"])
    assert result.exit_code == 1
    assert "smoke test failed" in result.output and "401" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_endpoint_fails_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["smoke", "--endpoint", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_an_engine_the_server_does_not_have_fails_by_name(server: LocalServer) -> None:
    result = runner.invoke(
        app, ["smoke", "--endpoint", server.url, "--api-key", KEY, "--engine", "bogus"]
    )
    assert result.exit_code != 0 and "engine" in result.output


@pytest.mark.parametrize("endpoint", ["notaurl", "http://127.0.0.1:1/x y"])
def test_a_malformed_endpoint_is_one_line(endpoint: str) -> None:
    for command in (
        ["smoke", "--endpoint", endpoint],
        ["query", "SELECT 1", "--endpoint", endpoint],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_a_lake_that_never_converts_fails_with_the_counts(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LocalLake, "_convert", lambda self, keys: None)
    with pytest.raises(SmokeFailed, match=r"not queryable within 2 s.*log_entries 0 of 300"):
        run_smoke(server.url, KEY, timeout_s=2, say=lambda line: None)
