"""``blocklake smoke``: record a small workload through the SDK against a running blocklake (the
local server or a deployment), wait until it is queryable, and check every count.

The first thing to run after ``cdk deploy``. What it records, all tagged with a fresh process
(so counts are exact on a lake that already holds data): ``LOGS`` log entries, ``METRICS``
values of the metric ``smoke``, and ``SPANS`` thread spans (an outer span around inner ones) on
each of ``THREADS`` threads. It then polls one count query per table until every count matches
or ``timeout_s`` passes, and times one query per engine.

Every step is reported through ``say`` as one line with its duration; a failure is a
``SmokeFailed`` naming the step and what was expected, never a traceback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from blocklake import sdk
from blocklake.client import QueryError, connect

THREADS = 3
LOGS = 100
METRICS = 100
SPANS = 50
"""Per thread: ``SPANS`` spans in all, one outer span holding ``SPANS - 1`` inner ones."""
POLL_S = 0.5


class SmokeFailed(Exception):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class Expected:
    table: str
    rows: int
    where: str = ""


def _record(run: str) -> None:
    def work(thread: int) -> None:
        with sdk.span("smoke outer"):
            for i in range(SPANS - 1):
                with sdk.span("smoke inner"):
                    pass
                sdk.info(f"smoke {run} thread {thread} span {i}", target="smoke")
        for i in range(LOGS - (SPANS - 1)):
            sdk.info(f"smoke {run} thread {thread} log {i}", target="smoke")
        for i in range(METRICS):
            sdk.metric("smoke", float(i), unit="count")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def expected_counts(process_id: str) -> list[Expected]:
    where = f"process_id = '{process_id}'"
    return [
        Expected("log_entries", THREADS * LOGS, f"{where} AND target = 'smoke'"),
        Expected("measures", THREADS * METRICS, f"{where} AND name = 'smoke'"),
        Expected("thread_spans", THREADS * SPANS, f"{where} AND name LIKE 'smoke %'"),
    ]


def run_smoke(
    endpoint: str,
    api_key: str,
    *,
    engines: tuple[str, ...] = ("duckdb",),
    timeout_s: float = 120.0,
    say: Callable[[str], None] = print,
) -> None:
    """Records, waits, checks; raises ``SmokeFailed`` at the first step that fails."""
    run = f"{time.time_ns():x}"
    begin = time.time_ns() - 60 * 10**9
    started = time.perf_counter()
    client = connect(endpoint, api_key)
    try:  # fail fast on a wrong endpoint or key, before the SDK's patient retries
        client.request("SELECT 1", begin, begin + 1)
    except QueryError as error:
        raise SmokeFailed(f"reaching {endpoint}: {error}") from None
    say(f"reached {endpoint} in {time.perf_counter() - started:.2f} s: the API key is accepted")
    sdk.init(endpoint, api_key, properties={"smoke_run": run}, flush_interval=0.2)
    process_id = sdk.process_id()
    try:
        _record(run)
        recorded = time.perf_counter()
        say(
            f"recorded {THREADS * LOGS} logs, {THREADS * METRICS} metric values and "
            f"{THREADS * SPANS} spans on {THREADS} threads in {recorded - started:.2f} s "
            f"(process {process_id})"
        )
        if not sdk.flush(timeout_s):
            raise SmokeFailed(
                f"upload: the SDK could not send everything to {endpoint} within {timeout_s:g} s"
            )
    finally:
        sdk.shutdown()
    flushed = time.perf_counter()
    say(f"uploaded in {flushed - recorded:.2f} s")

    def count(item: Expected, engine: str) -> int:
        sql = f"SELECT count(*) AS n FROM {item.table} WHERE {item.where}"
        try:
            answer = client.request(sql, begin, time.time_ns() + 60 * 10**9, engine=engine)
        except QueryError as error:
            raise SmokeFailed(f"query on {engine}: {error}") from None
        return json.loads(answer.body)["rows"][0][0]

    wanted = expected_counts(process_id)
    deadline = flushed + timeout_s
    while True:
        found = {item.table: count(item, engines[0]) for item in wanted}
        if all(found[item.table] == item.rows for item in wanted):
            break
        if time.perf_counter() > deadline:
            got = ", ".join(f"{i.table} {found[i.table]} of {i.rows}" for i in wanted)
            raise SmokeFailed(f"not queryable within {timeout_s:g} s after upload: {got}")
        time.sleep(POLL_S)
    ready = time.perf_counter()
    say(
        "queryable "
        + f"{ready - flushed:.2f} s after upload: "
        + ", ".join(f"{item.table} {item.rows}/{item.rows}" for item in wanted)
    )
    for engine in engines:
        before = time.perf_counter()
        found = {item.table: count(item, engine) for item in wanted}
        if any(found[item.table] != item.rows for item in wanted):
            raise SmokeFailed(f"{engine} counts differ: {found}")
        say(f"{engine}: {len(wanted)} count queries in {time.perf_counter() - before:.2f} s")
    say(f"smoke test passed in {time.perf_counter() - started:.2f} s")
