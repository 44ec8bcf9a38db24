"""DuckDB over Parquet on S3: httpfs (loaded from the PyPI wheel) vs pyarrow's S3 filesystem.

    .venv/bin/python bench/duckdb_s3.py [--quick] [--files 200] [--rows 5000] [--repeats 3]

All read the same files from moto's ``ThreadedMotoServer`` over real HTTP on 127.0.0.1:

- **httpfs**: ``LOAD '<site-packages>/duckdb_extension_httpfs/.../httpfs.duckdb_extension'``,
  ``CREATE SECRET (TYPE s3, ...)``, then ``read_parquet([s3://...], union_by_name = true)``,
  exactly what ``DuckDbEngine`` does with ``blocklake.query.duckdb_s3.s3_connection_setup``;
- **pyarrow**: ``pyarrow.dataset`` over ``pyarrow.fs.S3FileSystem`` for the same keys,
  registered with DuckDB (projection and filters are pushed into the Arrow scanner).

The query groups a measures-shaped table (name, value, time) by name, over ``--files`` files
(200) and over ``--small`` files (5: a query of a few compacted hours, where the fixed cost of
each query shows). Each repeat opens a new connection, as each query does in the engine. Best
(minimum) of ``--repeats``; prints the ratio. httpfs is also timed with DuckDB's extension
signature check, which hashes the 21 MB file at every LOAD (see ``duckdb_s3.DUCKDB_CONFIG``).

Both readers make about the same requests (1 HEAD + 2 GETs per file once httpfs caches metadata
and footers), and moto, a Python server, serves them slower than S3 would: the 200-file figures
mostly measure moto. Run on 2026-11-27 (2 shared cores):

    200 files: httpfs 2750 ms (signature checked 2964), pyarrow 2979: pyarrow/httpfs 1.08
      5 files: httpfs   96 ms (signature checked  164), pyarrow  114: pyarrow/httpfs 1.18

so the engine uses httpfs (it also keeps ``read_parquet`` and the ``allowed_paths`` lock-down
as they are on local files).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from _common import best_of, machine
from moto.server import ThreadedMotoServer

from blocklake.query.duckdb_s3 import DUCKDB_CONFIG, environment_credentials, s3_connection_setup

BUCKET = "bench-lake"
PREFIX = "tables/measures/tenant=bench/"
SQL = (
    "SELECT name, count(*) AS n, sum(value) AS total, epoch_us(max(time)) AS last "
    "FROM m GROUP BY name"
)


def _fragment(index: int, rows: int) -> bytes:
    base = 1_795_000_000_000_000_000 + index * rows * 1000
    table = pa.table(
        {
            "name": pa.array(
                [f"metric.{(index + i) % 37}" for i in range(rows)]
            ).dictionary_encode(),
            "value": pa.array([float(i % 1000) + index for i in range(rows)]),
            "time": pa.array([base + i * 1000 for i in range(rows)], pa.timestamp("ns", "UTC")),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def compare(
    keys: list[str], setup: tuple[str, ...], s3fs: pafs.S3FileSystem, repeats: int
) -> tuple[float, float, float]:
    """Seconds, best of ``repeats``: httpfs with the signature check, httpfs as the engine runs
    it, and pyarrow's S3 filesystem; the three must agree on the result."""
    urls = ", ".join(f"'s3://{BUCKET}/{key}'" for key in keys)
    results: dict[str, list] = {}

    def httpfs(config: dict[str, str]) -> float:
        started = time.perf_counter()
        connection = duckdb.connect(config=config)
        for statement in setup:
            connection.execute(statement)
        connection.execute(
            f"CREATE VIEW m AS SELECT * FROM read_parquet([{urls}], union_by_name = true)"
        )
        results["httpfs"] = sorted(connection.sql(SQL).fetchall())
        connection.close()
        return time.perf_counter() - started

    def arrow() -> float:
        started = time.perf_counter()
        connection = duckdb.connect()
        dataset = ds.dataset([f"{BUCKET}/{key}" for key in keys], format="parquet", filesystem=s3fs)
        connection.register("m", dataset)
        results["pyarrow"] = sorted(connection.sql(SQL).fetchall())
        connection.close()
        return time.perf_counter() - started

    verified_s = best_of(lambda: httpfs({}), repeats)
    httpfs_s = best_of(lambda: httpfs(dict(DUCKDB_CONFIG)), repeats)
    arrow_s = best_of(arrow, repeats)
    if results["httpfs"] != results["pyarrow"]:
        raise SystemExit("the two readers disagree")
    return verified_s, httpfs_s, arrow_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", type=int, default=5, help="files of the small query")
    parser.add_argument("--quick", action="store_true", help="20 files of 1,000 rows, once (CI)")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rows, args.repeats = 20, 1000, 1
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        keys = [
            f"{PREFIX}date=2026-11-27/hour={i % 24:02d}/f{i:04d}.parquet" for i in range(args.files)
        ]
        with ThreadPoolExecutor(8) as pool:
            sizes = list(
                pool.map(
                    lambda ik: (
                        s3.put_object(
                            Bucket=BUCKET, Key=ik[1], Body=(body := _fragment(ik[0], args.rows))
                        ),
                        len(body),
                    )[1],
                    enumerate(keys),
                )
            )
        setup = s3_connection_setup(
            BUCKET,
            environment_credentials(env),
            {**env, "AWS_ENDPOINT_URL_S3": endpoint, "HOME": os.environ.get("HOME", "")},
        )
        s3fs = pafs.S3FileSystem(
            access_key="bench",
            secret_key="bench",
            region="us-east-1",
            endpoint_override=f"{host}:{port}",
            scheme="http",
        )
        print(machine())
        print(
            f"Parquet files of {args.rows:,} rows (~{sum(sizes) / len(sizes) / 1e3:.0f} kB) "
            "on moto "
            f"(ThreadedMotoServer at {endpoint}); GROUP BY name; each repeat a new connection"
        )
        for count, repeats in ((args.files, args.repeats), (args.small, args.repeats + 2)):
            verified_s, httpfs_s, arrow_s = compare(keys[:count], setup, s3fs, repeats)
            print(f"{count} files, best of {repeats}:")
            print(f"  httpfs, signature checked at each LOAD:    {verified_s * 1000:8.1f} ms")
            print(f"  httpfs, as DuckDbEngine runs it (trusted): {httpfs_s * 1000:8.1f} ms")
            print(f"  pyarrow (S3FileSystem dataset registered): {arrow_s * 1000:8.1f} ms")
            faster = "httpfs" if httpfs_s <= arrow_s else "pyarrow"
            print(f"  ratio pyarrow/httpfs = {arrow_s / httpfs_s:.2f} ({faster} faster)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
