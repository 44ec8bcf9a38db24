"""The MetadataStore contract, run on SQLite, PostgreSQL (psycopg) and the RDS Data API."""

from __future__ import annotations

import random
import threading

import pytest

from blocklake.stores.metadata import MetadataConflict, SqlMetadataStore
from tests.support.metadata_rows import NOV_2026_NS, a_block, a_process, a_stream

SECOND = 1_000_000_000
DAY = 86_400 * SECOND


def test_a_process_registered_twice_is_one_row(store: SqlMetadataStore) -> None:
    assert store.insert_process("t", a_process()) is True
    assert store.insert_process("t", a_process()) is False
    assert store.get_process("t", "p1") == a_process()


def test_a_process_id_with_other_values_is_a_conflict(store: SqlMetadataStore) -> None:
    store.insert_process("t", a_process())
    with pytest.raises(MetadataConflict):
        store.insert_process("t", a_process(exe="/usr/bin/other"))
    assert store.get_process("t", "p1") == a_process()


def test_a_stream_registered_twice_is_one_row(store: SqlMetadataStore) -> None:
    store.insert_process("t", a_process())
    assert store.insert_stream("t", a_stream()) is True
    assert store.insert_stream("t", a_stream()) is False
    assert store.get_stream("t", "s1") == a_stream()
    with pytest.raises(MetadataConflict):
        store.insert_stream("t", a_stream(tags=("metrics",)))


def test_a_block_registered_twice_is_one_row(store: SqlMetadataStore) -> None:
    assert store.insert_block("t", a_block()) is True
    assert store.insert_block("t", a_block()) is False
    assert store.get_block("t", "b1") == a_block()
    assert store.list_blocks("t", 0, 2**62) == [a_block()]


@pytest.mark.parametrize(
    "change", [{"object_count": 7}, {"begin_time_ns": NOV_2026_NS - 40 * DAY}], ids=str
)
def test_a_block_id_with_other_values_is_a_conflict(store: SqlMetadataStore, change) -> None:
    """Even with another begin time, which on PostgreSQL is another partition and primary key."""
    store.insert_block("t", a_block())
    with pytest.raises(MetadataConflict):
        store.insert_block("t", a_block(**change))
    assert store.list_blocks("t", 0, 2**62) == [a_block()]


def test_missing_rows_are_none(store: SqlMetadataStore) -> None:
    assert store.get_process("t", "nope") is None
    assert store.get_stream("t", "nope") is None
    assert store.get_block("t", "nope") is None
    assert store.list_blocks("t", 0, 2**62) == []


def test_list_blocks_keeps_those_overlapping_the_range_by_stream_and_sequence(
    store: SqlMetadataStore,
) -> None:
    blocks = [
        a_block(f"{stream}-{sequence}", stream, sequence, NOV_2026_NS + sequence * 10 * SECOND)
        for stream in ("s2", "s1")
        for sequence in range(5)
    ]  # each lasts 1 s, every 10 s
    for block in random.Random(7).sample(blocks, len(blocks)):
        store.insert_block("t", block)
    begin, end = NOV_2026_NS + 10 * SECOND + SECOND // 2, NOV_2026_NS + 30 * SECOND
    ids = [block.block_id for block in store.list_blocks("t", begin, end)]
    # 1 ends inside the range, 2 starts inside it, 3 starts exactly at its (exclusive) end
    assert ids == ["s1-1", "s1-2", "s2-1", "s2-2"]
    assert [b.block_id for b in store.list_blocks("t", begin, end, stream_id="s2")] == [
        "s2-1",
        "s2-2",
    ]


def test_list_blocks_spans_months_and_far_off_clocks(store: SqlMetadataStore) -> None:
    """On PostgreSQL these land in different monthly partitions and in the DEFAULT one."""
    times = [NOV_2026_NS - 45 * DAY, NOV_2026_NS, NOV_2026_NS + 40 * DAY, 946_684_800 * SECOND]
    for sequence, begin in enumerate(times):
        store.insert_block("t", a_block(f"b{sequence}", sequence=sequence, begin_time_ns=begin))
    assert [b.begin_time_ns for b in store.list_blocks("t", 0, 2**62)] == times
    assert [b.block_id for b in store.list_blocks("t", NOV_2026_NS - 50 * DAY, NOV_2026_NS)] == [
        "b0"
    ]


def test_tenant_b_never_sees_tenant_a(store: SqlMetadataStore) -> None:
    store.insert_process("a", a_process())
    store.insert_stream("a", a_stream())
    store.insert_block("a", a_block())
    assert store.get_process("b", "p1") is None
    assert store.get_stream("b", "s1") is None
    assert store.get_block("b", "b1") is None
    assert store.list_blocks("b", 0, 2**62) == []
    # the same ids with other content are no conflict in another tenant
    assert store.insert_process("b", a_process(exe="/bin/b")) is True
    assert store.insert_block("b", a_block(object_count=1)) is True
    assert store.get_process("a", "p1") == a_process()
    assert store.list_blocks("a", 0, 2**62) == [a_block()]


def test_migrating_again_changes_nothing(store: SqlMetadataStore) -> None:
    store.insert_block("t", a_block())
    assert store.migrate() == []
    assert store.list_blocks("t", 0, 2**62) == [a_block()]


def test_racing_inserts_of_one_block_make_one_row(store: SqlMetadataStore) -> None:
    start = threading.Barrier(6)
    results: list[bool] = []

    def insert() -> None:
        start.wait()
        results.append(store.insert_block("t", a_block()))

    threads = [threading.Thread(target=insert) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert store.list_blocks("t", 0, 2**62) == [a_block()]


def test_conversion_failures_count_attempts_per_tenant_and_clear(store: SqlMetadataStore) -> None:
    assert store.record_conversion_failure("t", "b1", "raw/k1", "corrupt") == 1
    assert store.record_conversion_failure("t", "b1", "raw/k1", "still corrupt") == 2
    assert store.record_conversion_failure("u", "b1", "raw/k2", "other tenant") == 1
    (failure,) = store.conversion_failures("t")
    assert (failure.block_id, failure.object_key, failure.attempts, failure.reason) == (
        "b1",
        "raw/k1",
        2,
        "still corrupt",
    )
    assert len(store.conversion_failures()) == 2
    store.clear_conversion_failure("t", "b1")
    assert store.conversion_failures("t") == []
    assert [f.reason for f in store.conversion_failures("u")] == ["other tenant"]


def test_blocks_inserted_between_spans_tenants(store: SqlMetadataStore) -> None:
    store.insert_block("t", a_block())
    store.insert_block("u", a_block(block_id="b2"))
    found = store.blocks_inserted_between(0, 2**62)
    assert sorted((tenant, block.block_id) for tenant, block in found) == [
        ("t", "b1"),
        ("u", "b2"),
    ]
    assert store.blocks_inserted_between(0, 1) == []
