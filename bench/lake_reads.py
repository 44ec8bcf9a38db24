# ruff: noqa: E501  (tables of figures read better on one line)
"""What reading the lake costs as history grows: a one-hour query with 1, 30 and 90 days of
history, and a point lookup (one process over a day) against a scan of the same day.

    .venv/bin/python bench/lake_reads.py [rows_per_hour]

Each history is a local Iceberg table of ``log_entries`` (``blocklake.lake``), one data file per
hour (what hourly compaction leaves), committed a day at a time, with 50 processes. The query
side's planner (``blocklake.lake.reader``: DuckDB over the metadata, no pyiceberg) plans the
last hour; printed: objects listed (the planner lists nothing), metadata objects opened and their
bytes, data files and bytes the query reads. Flat means the same figures for 1, 30 and 90 days.

The point lookup: one ``process_id`` over a day. Files are sorted by process then time, so the
Parquet row groups' statistics let a reader skip all but the process's; printed: row groups and
bytes whose statistics can hold it, against the whole day's. Row groups here are 1,024 rows
(``write.parquet.row-group-limit``), standing for the lake's 131,072 at 128x the rate. Ids inside
``properties`` (trace, request) are in a map, which Parquet statistics do not cover: a lookup by
them scans the range (no Parquet bloom filters: pyiceberg 0.12 does not write them).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import _common
import duckdb
import pyarrow as pa

from blocklake.config import Settings
from blocklake.lake import Fragment
from blocklake.lake.catalog import open_lake
from blocklake.lake.iceberg import IcebergLake
from blocklake.stores.blobs import LocalBlobStore

HOUR_US = 3600 * 10**6
END_US = 1_780_000_000 * 10**6 // HOUR_US * HOUR_US
PROCESSES = 50


def day_of_rows(day: int, rows_per_hour: int) -> pa.Table:
    count = 24 * rows_per_hour
    first = END_US - (day + 1) * 24 * HOUR_US
    step = 24 * HOUR_US // count
    return pa.table(
        {
            "process_id": [f"process-{i % PROCESSES:03d}" for i in range(count)],
            "stream_id": ["s"] * count,
            "block_id": [f"b{day}"] * count,
            "time": pa.array(
                [first + i * step for i in range(count)], pa.timestamp("us", tz="UTC")
            ),
            "level": ["INFO"] * count,
            "target": ["bench"] * count,
            "message": [f"message {i}" for i in range(count)],
            "properties": pa.array(
                [[("request_id", f"r{day}-{i}")] for i in range(count)],
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )


def build(root: Path, days: int, rows_per_hour: int) -> IcebergLake:
    lake = open_lake(Settings(data_dir=root), LocalBlobStore(root))
    for day in reversed(range(days)):
        lake.append_fragments(
            "log_entries", "acme", [Fragment("-", day_of_rows(day, rows_per_hour), (f"day-{day}",))]
        )
        lake.commit_pending()
        if day == days - 1:  # the first commit created the table
            table = lake.load("log_entries", "acme")
            with table.transaction() as transaction:
                transaction.set_properties({"write.parquet.row-group-limit": "1024"})
    # The committer's hourly run: snapshots older than half an hour expired (steady state).
    lake.compact(time.time_ns() + 3600 * 10**9)
    return lake


def row_groups(files: list[str], process: str | None) -> tuple[int, int]:
    """Row groups, and their compressed bytes, whose ``process_id`` statistics can hold
    ``process`` (every row group when None)."""
    hit = "true" if process is None else "stats_min_value <= $p AND stats_max_value >= $p"
    groups, size = (
        duckdb.connect()
        .execute(
            "WITH groups AS (SELECT file_name, row_group_id, sum(total_compressed_size) AS bytes, "
            f"bool_or(path_in_schema = 'process_id' AND {hit}) AS hit "
            "FROM parquet_metadata($f) GROUP BY ALL) SELECT count(*), sum(bytes) FROM groups WHERE hit",
            {"f": files, **({"p": process} if process else {})},
        )
        .fetchone()
    )
    return int(groups), int(size or 0)


def main() -> None:
    rows_per_hour = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(_common.machine())
    print(f"log_entries, {rows_per_hour} rows per hour, {PROCESSES} processes, one file per hour\n")
    print(
        "| history | objects listed | metadata objects opened | metadata bytes | data files | data bytes | planning ms |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        lakes = {}
        for days in (1, 30, 90):
            lakes[days] = lake = build(Path(scratch) / f"d{days}", days, rows_per_hour)
            planner = lake.planner()
            started = time.perf_counter()
            plan = planner.plan("log_entries", "acme", (END_US - HOUR_US) * 1000, END_US * 1000)
            ms = (time.perf_counter() - started) * 1000
            print(
                f"| {days} days | 0 | {planner.opened} | {planner.opened_bytes} | {len(plan.data_files)} | {plan.bytes} | {ms:.0f} |"
            )
        day = lakes[1].plan("log_entries", "acme", (END_US - 24 * HOUR_US) * 1000, END_US * 1000)
        files = [f.path for f in day.data_files]
        all_groups, all_bytes = row_groups(files, None)
        hit_groups, hit_bytes = row_groups(files, "process-007")
        print("\n| one day | files | row groups | bytes |")
        print("|---|---|---|---|")
        print(f"| full scan | {len(files)} | {all_groups} | {all_bytes} |")
        print(f"| one process_id | {len(files)} | {hit_groups} | {hit_bytes} |")
        print(f"\npoint lookup reads {hit_bytes / max(all_bytes, 1):.3f} of the full scan's bytes")


if __name__ == "__main__":
    main()
