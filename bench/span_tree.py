# ruff: noqa: E501  (tables of figures read better on one line)
"""The merged call tree (the ``span_tree`` view) over up to 1 M spans: spans per second, and
whether the cost grows linearly with the spans (a quadratic tree would take 100x for 10x spans).

Builds a lake of one tenant and one hour: thread spans of 8 processes x 4 threads, each thread
repeating a call tree of 40 spans 4 levels deep (20 names) under one ``main``, 4 Parquet files, zstd like the
ETL's, written by DuckDB in the lake's layout and schemas; plus one never-ended ``main`` span per
thread in ``unmatched_spans`` (the root of each thread's tree). Then, for 100 k, 300 k and 1 M
spans, best of ``--repeats``, through the DuckDB engine exactly as the query Lambda runs it
(allow-list, views, limits, worker process):

- ``SELECT count(*), sum(duration_ns) FROM thread_spans``: a plain scan of the same spans, the
  baseline;
- ``SELECT * FROM span_tree``: the recursive call tree (paths, counts, total and self times);
- ``span_tree.nest`` and ``span_tree.folded`` over its rows (what ``blocklake spans --tree`` and
  ``--folded`` do on the client);
- ``SELECT count(*) FROM open_spans`` (which reads the spans too, for their ends).

Targets: 1 M spans within the query time limit (20 s); the tree's time for 10x the spans at most
20x (linear: 10x; quadratic: 100x).

    .venv/bin/python bench/span_tree.py             # ~1 minute
    .venv/bin/python bench/span_tree.py --quick     # 10 k, 30 k, 100 k spans
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
from blocklake.lake.iceberg import IcebergLake
from blocklake.query import span_tree
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryRequest
from blocklake.stores.blobs import LocalBlobStore

TENANT = "bench"
HOUR_START = "2026-11-20 08:00:00+00"
BEGIN_NS = 1_795_161_600 * 10**9  # 2026-11-20T08:00:00Z
PROCESSES = 8
THREADS = 4
FILES = 4
TEMPLATE = 40
"""Spans per repetition of a thread's call tree: a tree of fan-out 3 (span k's parent is span
(k - 2) // 3 + 1), 4 levels, each child a third of its parent's time, less 1 us."""
NAMES = 20


def build_lake(root: Path, spans: int) -> None:
    """``spans`` thread spans (of which one ``main`` per thread is open, in unmatched_spans)."""
    connection = duckdb.connect()
    streams = PROCESSES * THREADS
    per_stream = spans // streams
    reps = per_stream // TEMPLATE
    # In each stream: span 1 is main (open); repetition r's span k (1-based within it) has id
    # 2 + r * TEMPLATE + k - 1 and parent main (k = 1) or its template parent, nested below.
    select = f"""
        WITH s AS (
            SELECT st, r, k,
                   2 + r * {TEMPLATE} + (k - 1) AS span_id,
                   CASE WHEN k = 1 THEN 1 ELSE 2 + r * {TEMPLATE} + ((k - 2) // 3) END AS parent_span_id,
                   CASE WHEN k = 1 THEN 1 WHEN k <= 4 THEN 2 WHEN k <= 13 THEN 3 ELSE 4 END AS depth,
                   CASE WHEN k = 1 THEN 999 WHEN k <= 4 THEN 332 WHEN k <= 13 THEN 110 ELSE 36 END AS span_us
            FROM range({streams}) a(st), range({reps}) b(r), range(1, {TEMPLATE} + 1) c(k)
        )
        SELECT printf('00000000-0000-4000-8000-%012d', st // {THREADS}) AS process_id,
               printf('00000000-0000-4000-9000-%012d', st) AS stream_id,
               'b' || (r // 100) AS block_id,
               span_id, parent_span_id, depth::INTEGER AS depth,
               'fn_' || ((k * 7) % {NAMES}) AS name, 'bench' AS target, 'bench.py' AS file,
               k::INTEGER AS line,
               TIMESTAMPTZ '{HOUR_START}' + to_microseconds(r * 1000 + k) AS "begin",
               TIMESTAMPTZ '{HOUR_START}' + to_microseconds(r * 1000 + k + span_us) AS "end",
               (span_us * 1000)::BIGINT AS duration_ns
        FROM s"""
    directory = root / f"tables/thread_spans/tenant={TENANT}/date=2026-11-20/hour=08"
    directory.mkdir(parents=True)
    for part in range(FILES):
        target = directory / f"part-{part}.parquet"
        connection.execute(
            f"COPY ({select} WHERE st % {FILES} = {part}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        )
    directory = root / f"tables/unmatched_spans/tenant={TENANT}/date=2026-11-20/hour=08"
    directory.mkdir(parents=True)
    connection.execute(
        f"""COPY (SELECT printf('00000000-0000-4000-8000-%012d', st // {THREADS}) AS process_id,
                  printf('00000000-0000-4000-9000-%012d', st) AS stream_id, 'last' AS block_id,
                  0::BIGINT AS sequence, 'thread' AS kind, 'begin' AS unmatched,
                  1::BIGINT AS span_id, 0::BIGINT AS parent_span_id, 0 AS depth, 'main' AS name,
                  'bench' AS target, 'bench.py' AS file, 1 AS line,
                  TIMESTAMPTZ '{HOUR_START}' AS "begin", NULL::TIMESTAMPTZ AS "end",
                  TIMESTAMPTZ '{HOUR_START}' AS block_begin,
                  TIMESTAMPTZ '{HOUR_START}' + INTERVAL 50 MINUTE AS block_end,
                  3000 * 10**9 AS open_ns
           FROM range({streams}) a(st)) TO '{directory}/part-0.parquet' (FORMAT parquet)"""
    )
    directory = root / f"tables/blocks/tenant={TENANT}/date=2026-11-20/hour=08"
    directory.mkdir(parents=True)
    connection.execute(  # each stream's latest block: the one whose open begins are main's
        f"""COPY (SELECT 'last' AS block_id, printf('00000000-0000-4000-9000-%012d', st) AS stream_id,
                  printf('00000000-0000-4000-8000-%012d', st // {THREADS}) AS process_id,
                  0::BIGINT AS sequence, TIMESTAMPTZ '{HOUR_START}' AS begin_time,
                  TIMESTAMPTZ '{HOUR_START}' + INTERVAL 50 MINUTE AS end_time,
                  0::BIGINT AS object_count, 0::BIGINT AS payload_size
           FROM range({streams}) a(st)) TO '{directory}/part-0.parquet' (FORMAT parquet)"""
    )


def register(root: Path, lake: IcebergLake) -> None:
    """The files written above become the tenant's Iceberg tables (``blocklake.lake``), one
    commit per table, as the committer makes them."""
    for table_dir in sorted((root / "tables").iterdir()):
        for hour_dir in sorted(table_dir.glob(f"tenant={TENANT}/date=*/hour=*")):
            data = pq.read_table(hour_dir)
            sources = (f"{table_dir.name}/{hour_dir.name}",)
            lake.append_fragments(table_dir.name, TENANT, [Fragment(hour_dir.name, data, sources)])
            lake.commit_pending()
            shutil.rmtree(hour_dir)


def measure(
    size: int, repeats: int, limits: QueryLimits
) -> tuple[int, float, float, float, int, float]:
    """Spans in the tree, best seconds of the scan, the tree and open_spans, paths, client
    seconds."""
    root = Path(tempfile.mkdtemp(prefix="blocklake-bench-tree-"))
    try:
        build_lake(root, size)
        blobs = LocalBlobStore(root)
        lake = open_lake(Settings(data_dir=root), blobs)
        register(root, lake)
        engine = DuckDbEngine(blobs, lake, limits)
        window = (BEGIN_NS, BEGIN_NS + 3600 * 10**9)
        answers = {}

        def timed(sql: str) -> float:
            request = QueryRequest(TENANT, sql, *window, limits.max_rows)
            start = time.perf_counter()
            answers[sql] = engine.run(request).table
            return time.perf_counter() - start

        scan = best_of(
            lambda: timed("SELECT count(*), sum(duration_ns) FROM thread_spans"), repeats
        )
        tree = best_of(lambda: timed(span_tree.tree_sql()), repeats)
        opened = best_of(lambda: timed("SELECT count(*) AS n FROM open_spans"), repeats)
        assert answers["SELECT count(*) AS n FROM open_spans"].to_pylist() == [
            {"n": PROCESSES * THREADS}
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = [list(r.values()) for r in answers[span_tree.tree_sql()].to_pylist()]
    streams = PROCESSES * THREADS
    spans = sum(r[5] for r in rows)
    assert spans == size // streams // TEMPLATE * TEMPLATE * streams + streams, spans

    def client() -> float:
        start = time.perf_counter()
        span_tree.nest(rows)
        span_tree.folded(rows)
        return time.perf_counter() - start

    return spans, scan, tree, opened, len(rows), best_of(client, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 k, 30 k and 100 k spans")
    parser.add_argument("--repeats", type=int, default=3, help="best of N")
    args = parser.parse_args()
    sizes = [10_000, 30_000, 100_000] if args.quick else [100_000, 300_000, 1_000_000]
    print(machine())
    limits = QueryLimits()
    verdicts = Verdicts()
    times: dict[int, float] = {}
    print(
        "\n| spans | scan (baseline) | span_tree | spans/s | tree / scan | paths | nest + folded (client) | open_spans |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        spans, scan, tree, opened, paths, on_client = measure(size, args.repeats, limits)
        times[size] = tree
        print(
            f"| {spans:,} | {scan * 1000:,.0f} ms | {tree * 1000:,.0f} ms | "
            f"{spans / tree:,.0f} | {tree / scan:.1f}x | {paths} | {on_client * 1000:.1f} ms | "
            f"{opened * 1000:,.0f} ms |"
        )
    small, large = sizes[0], sizes[-1]
    growth = times[large] / times[small]
    print(
        f"\ntree time for {large // small}x the spans: {growth:.1f}x (linear {large // small}x, quadratic {(large // small) ** 2}x)"
    )
    verdicts.check(
        f"span_tree over {large:,} spans within the query time limit",
        f"{times[large]:.2f} s",
        f"<= {limits.timeout_s:g} s",
        times[large] <= limits.timeout_s,
    )
    verdicts.check(
        f"span_tree time for {large // small}x the spans",
        f"{growth:.1f}x",
        f"<= {2 * large // small}x",
        growth <= 2 * large // small,
    )
    verdicts.print()
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
