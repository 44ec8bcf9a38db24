# ruff: noqa: E501  (tables of figures read better on one line)
"""Query latency of the typical questions over a lake of 10 M events, with the dry run beside.

Builds a lake of one tenant over 24 hourly partitions (log entries 40 %, metric samples 40 %,
thread spans 20 % of the rows, 4 files per table per hour, zstd like the ETL's, written by DuckDB
in the lake's layout and schemas), then asks each question of ``tests/query/typical_questions.py``
over the whole day through the DuckDB engine exactly as the query Lambda does (allow-list,
views, limits), best of ``--repeats``. Prints per question: rows answered, latency, the dry run's
partitions, files, bytes and estimated Lambda seconds and Athena cost, and the bytes the process
actually read (``rchar`` of ``/proc/self/io``: every byte DuckDB's threads read, page cache
included). Target: each question within the query time limit (20 s).

    .venv/bin/python bench/query_latency.py                    # 10 M events, ~2 minutes
    .venv/bin/python bench/query_latency.py --events 1000000   # quicker, smaller
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import Verdicts, best_of, machine
from blocklake.config import QueryLimits, Settings
from blocklake.lake import Fragment
from blocklake.lake.catalog import open_lake
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryRequest
from blocklake.query.plan import dry_run
from blocklake.stores.blobs import LocalBlobStore
from tests.query.typical_questions import QUESTIONS

TENANT = "bench"
DAY = "2026-11-20"
HOURS = 24
FILES_PER_HOUR = 4
PROCESSES = 20
TIME_LIMIT_S = QueryLimits().timeout_s

PROCESS_ID = "printf('00000000-0000-4000-8000-%012d', {i} % 20)"
STREAM_ID = "printf('00000000-0000-4000-9000-%012d', {i} % 20)"
SELECTS = {
    "log_entries": """
        SELECT {process} AS process_id, {stream} AS stream_id, 'b' || (i // 5000) AS block_id,
               {time} AS time,
               CASE WHEN i % 97 = 0 THEN 'ERROR' WHEN i % 23 = 0 THEN 'WARN'
                    WHEN i % 3 = 0 THEN 'DEBUG' ELSE 'INFO' END AS level,
               'demo.orders' AS target,
               CASE WHEN i % 97 = 0 THEN 'card declined for order ' || i
                    ELSE 'order ' || i || ' done' END AS message,
               (CASE WHEN i % 10 = 0 THEN MAP {{'worker': (i % 4)::VARCHAR}} ELSE MAP {{}} END)::MAP(VARCHAR, VARCHAR) AS properties
        FROM range({start}, {stop}) t(i)""",
    "measures": """
        SELECT {process} AS process_id, {stream} AS stream_id, 'b' || (i // 5000) AS block_id,
               {time} AS time,
               CASE WHEN i % 50 = 0 THEN 'queue_depth' ELSE 'order_latency' END AS name,
               CASE WHEN i % 50 = 0 THEN 'orders' ELSE 'ms' END AS unit,
               (hash(i) % 10000) / 100.0 AS value
        FROM range({start}, {stop}) t(i)""",
    "thread_spans": """
        SELECT {process} AS process_id, {stream} AS stream_id, 'b' || (i // 5000) AS block_id,
               i AS span_id, CASE WHEN i % 4 = 0 THEN 0 ELSE i - i % 4 END AS parent_span_id,
               CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END::INTEGER AS depth,
               ['handle_order', 'parse_order', 'query_inventory', 'charge_card'][i % 4 + 1] AS name,
               'demo.orders' AS target, 'demo.py' AS file, (40 + i % 4)::INTEGER AS line,
               {time} AS "begin", {time} + to_microseconds((hash(i) % 5000)::BIGINT) AS "end",
               ((hash(i) % 5000) * 1000)::BIGINT AS duration_ns
        FROM range({start}, {stop}) t(i)""",
}
SHARES = {"log_entries": 0.4, "measures": 0.4, "thread_spans": 0.2}


def build_lake(root: Path, events: int) -> dict[str, int]:
    """Writes the lake; rows per table."""
    connection = duckdb.connect()
    counts = {}
    for table, share in SHARES.items():
        rows = int(events * share)
        counts[table] = rows
        per_file = rows // (HOURS * FILES_PER_HOUR)
        for hour in range(HOURS):
            directory = root / f"tables/{table}/tenant={TENANT}/date={DAY}/hour={hour:02d}"
            directory.mkdir(parents=True)
            for part in range(FILES_PER_HOUR):
                start = (hour * FILES_PER_HOUR + part) * per_file
                step_us = 3600 * 10**6 // (per_file * FILES_PER_HOUR)
                time_sql = (
                    f"TIMESTAMPTZ '{DAY} {hour:02d}:00:00+00' "
                    f"+ to_microseconds(((i - {start}) * {FILES_PER_HOUR} + {part}) * {step_us})"
                )
                select = SELECTS[table].format(
                    # A span and its children (4 rows) share a stream, as on one thread.
                    process=PROCESS_ID.format(i="(i // 4)"),
                    stream=STREAM_ID.format(i="(i // 4)"),
                    time=time_sql,
                    start=start,
                    stop=start + per_file,
                )
                target = directory / f"part-{part}.parquet"
                connection.execute(
                    f"COPY ({select}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
                )
    processes = root / f"tables/processes/tenant={TENANT}/date={DAY}/hour=00"
    processes.mkdir(parents=True)
    connection.execute(
        f"""COPY (SELECT {PROCESS_ID.format(i="i")} AS process_id, '/usr/bin/shop' AS exe,
                  'svc' AS username, 'host-' || i AS computer,
                  TIMESTAMPTZ '{DAY} 00:00:00+00' AS start_time, NULL::VARCHAR AS parent_process_id,
                  MAP {{'app': 'shop', 'build': '1.4.' || (i % 3)}} AS properties
           FROM range({PROCESSES}) t(i)) TO '{processes}/part-0.parquet' (FORMAT parquet)"""
    )
    register(root)
    return counts


def register(root: Path) -> None:
    """The files written above become the tenant's Iceberg tables (``blocklake.lake``): each
    hour's files one commit, which the lake writes as one file per hour partition."""
    blobs = LocalBlobStore(root)
    lake = open_lake(Settings(data_dir=root), blobs)
    for table_dir in sorted((root / "tables").iterdir()):
        for hour_dir in sorted(table_dir.glob(f"tenant={TENANT}/date=*/hour=*")):
            data = pq.read_table(hour_dir)
            sources = (f"{table_dir.name}/{hour_dir.name}",)
            lake.append_fragments(table_dir.name, TENANT, [Fragment(hour_dir.name, data, sources)])
            lake.commit_pending()
            shutil.rmtree(hour_dir)


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="rows in the lake")
    parser.add_argument("--repeats", type=int, default=3, help="best of N per question")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, best of 1 (CI)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeats = 100_000, 1
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="blocklake-bench-query-"))
    try:
        started = time.perf_counter()
        counts = build_lake(root, args.events)
        print(
            f"lake: {sum(counts.values()):,} events ({', '.join(f'{t} {n:,}' for t, n in counts.items())}), "
            f"{HOURS} hourly partitions x {FILES_PER_HOUR} files per table, "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        limits = QueryLimits(timeout_s=TIME_LIMIT_S)
        blobs = LocalBlobStore(root)
        engine = DuckDbEngine(blobs, open_lake(Settings(data_dir=root), blobs), limits)
        begin = int(time.mktime(time.strptime(f"{DAY}", "%Y-%m-%d")) - time.timezone) * 10**9
        verdicts = Verdicts()
        print(
            "\n| question | rows | latency (best of "
            f"{args.repeats}) | partitions | files | bytes (dry run) | bytes read | est. Lambda s | est. Athena $ |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for question, sql in QUESTIONS.items():
            request = QueryRequest(TENANT, sql, begin, begin + 24 * 3600 * 10**9, limits.max_rows)
            plan = dry_run(engine.scan(request), "duckdb", limits)
            rows = 0

            def once(request: QueryRequest = request) -> float:
                nonlocal rows
                start = time.perf_counter()
                rows = engine.run(request).table.num_rows
                return time.perf_counter() - start

            before = rchar()
            once()
            read = rchar() - before
            latency = best_of(once, args.repeats)
            estimate = plan["estimate"]
            print(
                f"| {question} | {rows:,} | {latency * 1000:,.0f} ms | {plan['partitions']} | "
                f"{plan['files']} | {plan['bytes'] / 1e6:,.1f} MB | {read / 1e6:,.1f} MB | "
                f"{estimate['lambda_seconds']:.2f} | {estimate['athena_usd']:.5f} |"
            )
            verdicts.check(
                f"{question}: within the query time limit",
                f"{latency:.2f} s",
                f"<= {TIME_LIMIT_S:g} s",
                latency <= TIME_LIMIT_S,
            )
        print()
        verdicts.print()
        return verdicts.exit_code
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
