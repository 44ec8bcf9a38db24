"""The ``blocklake`` command: serve the embedded lake, run the demo, query a lake."""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from blocklake.config import Settings

app = typer.Typer(add_completion=False, help="blocklake: a serverless telemetry lakehouse.")
console = Console()
DEFAULT_KEY = "blocklake-local"


class QueryFailed(Exception):
    pass


def post_query(endpoint: str, api_key: str, document: dict, timeout: float = 60) -> dict:
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/v1/query",
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):  # not our API: its status line, one line
            message = f"{error.reason} (is {endpoint} a blocklake API?)"
        raise QueryFailed(f"{error.code}: {message}") from None
    except urllib.error.URLError as error:
        raise QueryFailed(f"cannot reach {endpoint}: {error.reason}") from None
    except (ValueError, OSError) as error:  # a malformed URL, a reset connection, not JSON
        raise QueryFailed(f"cannot query {endpoint}: {error}") from None


def result_table(title: str, result: dict) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in result["columns"]:
        numeric = column["type"].split("(")[0] in (
            "BIGINT",
            "INTEGER",
            "DOUBLE",
            "DECIMAL",
            "FLOAT",
            "HUGEINT",
        )
        table.add_column(column["name"], justify="right" if numeric else "left")
    for row in result["rows"]:
        table.add_row(*("" if value is None else str(value) for value in row))
    return table


def parse_duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return int(float(text[:-1]) * units[text[-1]] * 1_000_000_000)
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(
            f"{text!r}: expected a number and a unit, like 15m, 2h or 7d"
        ) from None


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Option(help="Lake and SQLite directory.")] = Path(
        "blocklake-data"
    ),
    host: str = "127.0.0.1",
    port: int = 8787,
) -> None:
    """Run the local lake: ingestion, conversion and query over HTTP, on the embedded defaults."""
    from blocklake.server.http import LocalServer

    settings = Settings.from_env({**os.environ, "BLOCKLAKE_DATA_DIR": str(data_dir)})
    server = LocalServer(settings, host, port).start()
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
    sql: Annotated[str, typer.Argument(help="One SQL query over the lake's tables.")],
    endpoint: Annotated[str, typer.Option(envvar="BLOCKLAKE_ENDPOINT")] = "http://127.0.0.1:8787",
    api_key: Annotated[str, typer.Option(envvar="BLOCKLAKE_API_KEY")] = DEFAULT_KEY,
    last: Annotated[str, typer.Option(help="Time range ending now, e.g. 15m, 2h, 7d.")] = "24h",
    begin: Annotated[
        str | None, typer.Option(help="Range start, ISO 8601 (overrides --last).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Range end, ISO 8601 (default: now).")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Run SQL against a blocklake API (local or deployed) and print the result."""
    now = time.time_ns()
    document = {"sql": sql, "end": end or now, "begin": begin or now - parse_duration(last)}
    try:
        result = post_query(endpoint, api_key, document)
    except QueryFailed as error:
        console.print(f"[red]query failed[/] {error}")
        raise typer.Exit(1) from None
    if output == "json":
        print(json.dumps(result, indent=2))
        return
    console.print(
        result_table(
            f"{result['row_count']} rows" + (" (truncated)" if result["truncated"] else ""), result
        )
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
        console.print(
            "[red]no key created[/]: this needs the AWS extra: pip install 'blocklake[aws]'"
        )
        raise typer.Exit(1) from None
    from blocklake.api_keys import create_api_key, secret_region

    try:
        client = boto3.client("secretsmanager", region_name=secret_region(secret_arn))
        key = create_api_key(client, secret_arn, tenant)
    except (ValueError, BotoCoreError, ClientError) as error:
        console.print(f"[red]no key created[/]: {error}")
        raise typer.Exit(1) from None
    console.print(f"API key for tenant {tenant} (works within 5 minutes):")
    print(key)


@app.command()
def smoke(
    endpoint: Annotated[
        str, typer.Option(envvar="BLOCKLAKE_ENDPOINT", help="API URL (the stack's ApiUrl).")
    ] = "http://127.0.0.1:8787",
    api_key: Annotated[
        str, typer.Option(envvar="BLOCKLAKE_API_KEY", help="An API key of the tenant to test.")
    ] = DEFAULT_KEY,
    engine: Annotated[
        list[str], typer.Option(help="Engine to check the counts on (repeatable).")
    ] = ["duckdb"],  # noqa: B006 (typer reads the default, never mutates it)
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait for each step.")] = 120.0,
) -> None:
    """Check a running blocklake end to end: record through the SDK, wait until queryable,
    check every count, time a query per engine."""
    from blocklake.smoke import SmokeFailed, run_smoke

    try:
        run_smoke(endpoint, api_key, engines=tuple(engine), timeout_s=timeout, say=console.print)
    except SmokeFailed as error:
        console.print(f"[red]smoke test failed[/]: {error}")
        raise typer.Exit(1) from None


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the lake here (default: a temporary directory).")
    ] = None,
    threads: int = 4,
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
