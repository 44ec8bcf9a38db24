"""One query, one DuckDB database, one process: what runs a tenant's checked SQL.

``run_isolated(plan)`` runs ``execute(plan)`` in a worker process of its own (started ahead
with DuckDB and pyarrow imported, used for one query, then gone), so that nothing one query
does can take the server, or another query, with it:

- its address space may grow by ``memory_mb + HEADROOM_MB`` at most (``RLIMIT_AS``): allocations
  DuckDB's buffer manager does not track (a scalar function building a 4 GB list or string)
  fail inside DuckDB as ``OutOfMemoryException``, answered 400 ``query_memory_limit``;
- it is killed ``KILL_GRACE_S`` after its timeout if DuckDB's own interrupt has not stopped it
  (a single function call, such as ``levenshtein`` of two long strings, cannot be interrupted);
- a crash or an out-of-memory kill ends the worker, not the server.

Inside the worker, ``execute`` builds the views over the plan's files, then sets ``allowed_paths``
to exactly those files, turns external access off and locks the configuration before the user's
SQL runs, with DuckDB's ``memory_limit``, ``threads``, spill size and temporary directory set
from the plan's limits, and rows and bytes capped while the result streams.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from blocklake.config import QueryLimits
from blocklake.errors import ClientError
from blocklake.query.engine import QueryResult

BATCH_ROWS = 2048
"""Rows per streamed result batch: the granularity of the row and byte caps."""
HEADROOM_MB = 1024
"""Address space a query's process may add beyond DuckDB's ``memory_limit`` to what it had
when the query arrived: DuckDB's threads and reservations, pyarrow's result, the interpreter."""
KILL_GRACE_S = 2.0
"""How long past its timeout a query's process may take to stop on its own before it is killed."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
AS_TEXT = re.compile(r"\b(UHUGEINT|VARIANT|BIT|BIGNUM|GEOMETRY|TIME WITH TIME ZONE)\b")
"""Types Arrow cannot carry (``VARIANT``), or carries wrongly (``UHUGEINT`` past 2^127 turns
negative in ``decimal128``; ``TIMETZ`` loses its offset)."""


@dataclass(frozen=True)
class PlannedView:
    table: str
    files: list[str]
    """Files (paths or ``s3://`` URLs) holding the table's rows for the query: all it reads."""
    select: str
    """The view's ``SELECT`` (``blocklake.query.views``), over ``read_parquet`` of ``files``."""


@dataclass(frozen=True)
class QueryPlan:
    """Everything the worker needs, decided by the server: it lists nothing and holds no
    credentials but those in ``setup``."""

    sql: str
    max_rows: int
    limits: QueryLimits
    temp_dir: str
    views: list[PlannedView]
    setup: tuple[str, ...] = ()
    """Statements run first, before the lock-down (loading httpfs, the tenant's S3 secret)."""
    config: dict[str, str] = field(default_factory=dict)
    """``duckdb.connect`` options besides the limits."""


def error_for(error: Exception, timed_out: bool, limits: QueryLimits) -> ClientError:
    """Whose fault and which limit: 400 for the query, 504 when it ran out of time, 502 when
    the lake could not be read. ``error`` is DuckDB's, or DuckDB's passed on by pyarrow while
    the result streams (an ``OSError`` whose text is DuckDB's)."""
    if timed_out:
        return _timeout(limits)
    if isinstance(error, duckdb.OutOfMemoryException | MemoryError | pa.ArrowMemoryError):
        return _out_of_memory(limits)
    if not isinstance(error, duckdb.Error) and "Out of Memory" in str(error):
        return _out_of_memory(limits)
    if isinstance(error, duckdb.HTTPException | duckdb.IOException) and not isinstance(
        error, duckdb.PermissionException
    ):
        return ClientError(502, "lake_unavailable", "the lake's files could not be read")
    return ClientError(400, "query_failed", _ANSI.sub("", str(error)))


def _timeout(limits: QueryLimits) -> ClientError:
    return ClientError(
        504,
        "query_timeout",
        f"the query ran longer than {limits.timeout_s:g} s (BLOCKLAKE_QUERY_TIMEOUT_S) and was "
        "stopped: narrow the time range, or aggregate more",
    )


def _out_of_memory(limits: QueryLimits) -> ClientError:
    return ClientError(
        400,
        "query_memory_limit",
        f"the query needs more than {limits.memory_mb} MB of memory (BLOCKLAKE_QUERY_MEMORY_MB) "
        f"and {limits.temp_mb} MB of spill space (BLOCKLAKE_QUERY_TEMP_MB): aggregate more, or "
        "narrow the time range",
    )


def _connect(plan: QueryPlan) -> duckdb.DuckDBPyConnection:
    limits = plan.limits
    return duckdb.connect(
        ":memory:",
        config={
            "memory_limit": f"{limits.memory_mb}MB",
            "threads": str(limits.threads),
            "temp_directory": plan.temp_dir,
            "max_temp_directory_size": f"{limits.temp_mb}MB",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            **plan.config,
        },
    )


def execute(plan: QueryPlan) -> QueryResult:
    """Runs the plan in this process (``run_isolated`` calls it in a worker)."""
    connection = _connect(plan)
    try:
        for statement in plan.setup:
            connection.execute(statement)
        for view in plan.views:
            connection.execute(f'CREATE VIEW "{view.table}" AS {view.select}')
        readable = [file for view in plan.views for file in view.files]
        connection.execute("SET allowed_directories = []")
        connection.execute("SET allowed_paths = $paths", {"paths": readable})
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        return _run_limited(connection, plan)
    finally:
        connection.close()


def _run_limited(connection: duckdb.DuckDBPyConnection, plan: QueryPlan) -> QueryResult:
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        connection.interrupt()

    timer = threading.Timer(plan.limits.timeout_s, interrupt)
    timer.start()
    try:
        try:
            relation = connection.sql(plan.sql)
        except (duckdb.BinderException, duckdb.CatalogException):
            # The relation API drops where the error is; binding again through execute()
            # fails the same way, before running anything, with "LINE n:" and a caret.
            connection.execute(plan.sql)
            raise
        columns = list(zip(relation.columns, [str(t) for t in relation.types], strict=True))
        if any(AS_TEXT.search(sql_type) for _, sql_type in columns):
            reader = _arrow_ready(relation, columns).to_arrow_reader(BATCH_ROWS)
        else:  # the user's own text runs, so an error while it runs points into it
            reader = connection.execute(plan.sql).fetch_record_batch(BATCH_ROWS)
        table, truncated_by = _collect(reader, plan.max_rows, plan.limits.max_result_bytes)
    except (duckdb.Error, OSError, MemoryError, pa.ArrowException) as error:
        raise error_for(error, timed_out.is_set(), plan.limits) from None
    finally:
        timer.cancel()
    return QueryResult(columns, table, truncated_by)


def _arrow_ready(
    relation: duckdb.DuckDBPyRelation, columns: list[tuple[str, str]]
) -> duckdb.DuckDBPyRelation:
    """The relation with each column Arrow cannot carry faithfully (``AS_TEXT``) cast to its
    text, so every format gets the value DuckDB prints (and the column keeps its SQL type in
    the answer's description)."""
    projected = []
    for position, (name, sql_type) in enumerate(columns, start=1):
        alias = '"' + name.replace('"', '""') + '"'
        value = f"CAST(#{position} AS VARCHAR)" if AS_TEXT.search(sql_type) else f"#{position}"
        projected.append(f"{value} AS {alias}")
    return relation.project(", ".join(projected))


def _leaves(array: pa.Array) -> int:
    """Values ``array`` holds, its nested lists', maps' and structs' included: what the answer
    will spell out one by one."""
    if isinstance(array, pa.StructArray):
        return len(array) + sum(_leaves(field) for field in array.flatten())
    if isinstance(array, pa.MapArray):
        return len(array) + _leaves(array.keys) + _leaves(array.items)
    if isinstance(array, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):
        return len(array) + _leaves(array.flatten())
    return len(array)


def _collect(
    reader: pa.RecordBatchReader, max_rows: int, max_bytes: int
) -> tuple[pa.Table, str | None]:
    """Batches until ``max_rows`` rows or ``max_bytes`` bytes, whichever comes first; the limit
    reached, if any. Bytes are the larger of the Arrow size and two per value held (nested
    values included): 16 million booleans are 2 MB in Arrow and 80 MB as JSON."""
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    truncated_by = None
    for batch in reader:
        room = max_bytes - size
        weight = max(batch.nbytes, 2 * sum(_leaves(column) for column in batch.columns))
        if weight > room:  # keep the rows that fit, at the batch's average row weight
            batches.append(batch.slice(0, batch.num_rows * room // weight))
            truncated_by = "max_result_bytes"
            break
        batches.append(batch)
        size += weight
        rows += batch.num_rows
        if rows > max_rows:
            truncated_by = "max_rows"
            break
    return pa.Table.from_batches(batches, reader.schema).slice(0, max_rows), truncated_by


def _answer(plan: QueryPlan) -> bytes:
    """What a worker writes back: one line of JSON, then, for a result, its Arrow IPC stream.
    JSON and Arrow, not pickle: the parent trusts nothing the process that ran the SQL says."""
    try:
        result = execute(plan)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.table.schema) as writer:
            writer.write_table(result.table)
    except ClientError as error:
        return _answer_error(error)
    except (MemoryError, pa.ArrowMemoryError):
        return _answer_error(_out_of_memory(plan.limits))
    except (pa.ArrowException, RecursionError) as error:  # a value Arrow cannot hold or write
        return _answer_error(
            ClientError(400, "query_result_unsupported", f"the answer cannot be built: {error}")
        )
    head = {"columns": result.columns, "truncated_by": result.truncated_by}
    return json.dumps(head).encode() + b"\n" + sink.getvalue().to_pybytes()


def _answer_error(error: ClientError) -> bytes:
    head = {"status": error.status, "code": error.code, "message": error.message}
    return json.dumps({**head, "headers": error.headers}).encode() + b"\n"


def _address_space() -> int:
    """This process's virtual size in bytes (``VmSize``): after DuckDB and pyarrow have loaded
    and run once it is about 1.5 GB here, mostly reserved and never touched."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


def _warm_up() -> None:
    """One query over empty views while nobody waits: DuckDB's first database in a process
    costs about 50 ms more than the next (measured here), and the schemas load once."""
    from blocklake.query.views import views as all_views

    with tempfile.TemporaryDirectory(prefix="blocklake-warm-") as temp_dir:
        views = [PlannedView(name, [], view.empty()) for name, view in all_views().items()]
        execute(QueryPlan("SELECT count(*) FROM log_entries", 1, QueryLimits(), temp_dir, views))


def serve_one() -> None:
    """A worker's whole life (``python -m blocklake.query.duckdb_sandbox``): wait, warm, for a
    plan on stdin; cap the address space; run it; write the answer to stdout; exit."""
    _warm_up()
    data = sys.stdin.buffer.read()
    if not data:  # the server went away before it needed this worker
        return
    plan: QueryPlan = pickle.loads(data)  # from the server, which started this process
    cap = _address_space() + (plan.limits.memory_mb + HEADROOM_MB) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.stdout.buffer.write(_answer(plan))
    sys.stdout.buffer.flush()


class _Workers:
    """Processes started ahead, each waiting to run one query and exit: a query does not wait
    for an interpreter to start and import DuckDB (about 0.3 s here), and no process ever holds
    two queries' data."""

    WARM = 1

    def __init__(self) -> None:
        self._ready: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    @staticmethod
    def _start() -> subprocess.Popen:
        path = os.pathsep.join(entry for entry in sys.path if entry)
        return subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
        )

    def take(self) -> subprocess.Popen:
        with self._lock:
            worker = self._ready.pop() if self._ready else None
        if worker is None or worker.poll() is not None:
            worker = self._start()
        threading.Thread(target=self._refill, name="blocklake-query-worker", daemon=True).start()
        return worker

    def _refill(self) -> None:
        worker = self._start()
        with self._lock:
            if len(self._ready) < self.WARM:
                self._ready.append(worker)
                return
        worker.stdin.close()  # enough are waiting: this one exits at once
        worker.wait()


_workers = _Workers()


def run_isolated(plan: QueryPlan) -> QueryResult:
    """``execute(plan)`` in a worker process of its own; ``ClientError`` as ``execute`` raises
    them, 504 when the worker had to be killed for time, 400 ``query_memory_limit`` when the
    kernel killed it for memory, 500 ``query_crashed`` for any other death."""
    worker = _workers.take()
    try:
        output, _ = worker.communicate(
            pickle.dumps(plan), timeout=plan.limits.timeout_s + KILL_GRACE_S
        )
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()
        raise _timeout(plan.limits) from None
    head, _, ipc = output.partition(b"\n")
    if not head:
        if worker.returncode == -signal.SIGKILL:  # the kernel's out-of-memory killer
            raise _out_of_memory(plan.limits)
        raise ClientError(500, "query_crashed", "the query's process ended without an answer")
    answer = json.loads(head)
    if "status" in answer:
        raise ClientError(answer["status"], answer["code"], answer["message"], answer["headers"])
    columns = [tuple(column) for column in answer["columns"]]
    return QueryResult(columns, pa.ipc.open_stream(ipc).read_all(), answer["truncated_by"])


if __name__ == "__main__":
    serve_one()
