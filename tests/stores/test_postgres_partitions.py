"""PostgreSQL specifics: the partitioned blocks table, retention, concurrent migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest

from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.migrations import apply_migrations, migrations_for
from blocklake.stores.postgres import PsycopgExecutor
from blocklake.stores.retention import (
    Month,
    block_partitions,
    drop_expired_blocks,
    ensure_block_partitions,
)
from blocklake.stores.sql import SqlExecutor
from tests.support.metadata_rows import NOV_2026_NS, a_block

DAY = 86_400 * 1_000_000_000
POSTGRES_BACKENDS = ["postgres", "data_api"]


def partition_of(executor: SqlExecutor, block_id: str) -> str:
    rows = executor.query(
        "SELECT tableoid::regclass::text AS part FROM blocks WHERE block_id = :id", {"id": block_id}
    )
    return str(rows[0]["part"])


@pytest.fixture(params=POSTGRES_BACKENDS)
def pg_store(request: pytest.FixtureRequest, make_executor) -> SqlMetadataStore:
    store = SqlMetadataStore(make_executor(request.param))
    apply_migrations(store.executor)
    ensure_block_partitions(store.executor, NOV_2026_NS)
    return store


def test_blocks_land_in_their_month_or_in_default(pg_store: SqlMetadataStore) -> None:
    executor = pg_store.executor
    assert sorted(block_partitions(executor)) == [
        "blocks_p202611",
        "blocks_p202612",
        "blocks_p202701",
    ]
    pg_store.insert_block("t", a_block("now"))
    pg_store.insert_block("t", a_block("next", begin_time_ns=NOV_2026_NS + 40 * DAY))
    pg_store.insert_block("t", a_block("future", begin_time_ns=NOV_2026_NS + 200 * DAY))
    assert partition_of(executor, "now") == "blocks_p202611"
    assert partition_of(executor, "next") == "blocks_p202612"
    assert partition_of(executor, "future") == "blocks_default"


def test_new_partitions_take_their_rows_from_default(pg_store: SqlMetadataStore) -> None:
    executor = pg_store.executor
    late = NOV_2026_NS + 100 * DAY  # February 2027: no partition yet
    pg_store.insert_block("t", a_block("early", begin_time_ns=late))
    assert partition_of(executor, "early") == "blocks_default"
    assert ensure_block_partitions(executor, late) == [
        "blocks_p202702",
        "blocks_p202703",
        "blocks_p202704",
    ]
    assert partition_of(executor, "early") == "blocks_p202702"
    assert pg_store.insert_block("t", a_block("early", begin_time_ns=late)) is False
    assert ensure_block_partitions(executor, late) == []


def test_retention_drops_whole_months(pg_store: SqlMetadataStore) -> None:
    executor = pg_store.executor
    ensure_block_partitions(executor, NOV_2026_NS - 60 * DAY)  # September and October too
    ancient = 946_684_800 * 1_000_000_000  # year 2000: DEFAULT partition
    for name, begin in [("sep", -60), ("oct", -30), ("nov", 0)]:
        pg_store.insert_block("t", a_block(name, begin_time_ns=NOV_2026_NS + begin * DAY))
    pg_store.insert_block("t", a_block("ancient", begin_time_ns=ancient))

    expired = drop_expired_blocks(executor, cutoff_ns=NOV_2026_NS - 20 * DAY)  # mid-October

    assert expired.partitions_dropped == ["blocks_p202609"]
    assert expired.rows_deleted == 1  # the ancient one, from DEFAULT
    assert [b.block_id for b in pg_store.list_blocks("t", 0, 2**62)] == ["oct", "nov"]
    assert "blocks_p202609" not in block_partitions(executor)


def test_sqlite_retention_deletes_the_same_rows(make_executor) -> None:
    store = SqlMetadataStore(make_executor("sqlite"))
    store.migrate()
    for name, begin in [("sep", -60), ("oct", -30), ("nov", 0)]:
        store.insert_block("t", a_block(name, begin_time_ns=NOV_2026_NS + begin * DAY))
    expired = drop_expired_blocks(store.executor, cutoff_ns=NOV_2026_NS - 20 * DAY)
    assert (expired.partitions_dropped, expired.rows_deleted) == ([], 1)
    assert [b.block_id for b in store.list_blocks("t", 0, 2**62)] == ["oct", "nov"]


def test_months_step_across_years() -> None:
    assert Month(2026, 11).plus(3) == Month(2027, 2)
    assert Month(2027, 1).plus(-1) == Month(2026, 12)
    assert Month.of(Month(2026, 12).start_ns) == Month(2026, 12)
    assert Month.of(Month(2026, 12).start_ns - 1) == Month(2026, 11)


@pytest.mark.parametrize("backend", POSTGRES_BACKENDS)
def test_racing_migrations_apply_each_version_once(
    backend: str, make_executor: Callable[[str], SqlExecutor]
) -> None:
    executors = [make_executor(backend) for _ in range(4)]
    start = threading.Barrier(len(executors))
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def migrate(executor: SqlExecutor) -> None:
        start.wait()
        try:
            applied.append(SqlMetadataStore(executor).migrate())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = [version for version, _ in migrations_for("postgres")]
    assert sorted(v for each in applied for v in each) == versions
    assert len(block_partitions(executors[0])) == 3


def test_a_broken_connection_is_replaced(postgres_conninfo: str) -> None:
    executor = PsycopgExecutor(postgres_conninfo, max_connections=1)
    pid = executor.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
    with psycopg.connect(postgres_conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        executor.query("SELECT 1 AS one")
    assert executor.query("SELECT :n::bigint % 7 AS r", {"n": 45}) == [{"r": 3}]
    executor.close()
