"""``etl.rows``: every column of the rows written for a block, read back exactly (ids, times at a
tick frequency other than 1 GHz, levels by name, spans paired by id and ordered by end)."""

from __future__ import annotations

import uuid

import pyarrow as pa

from blocklake.etl import rows
from blocklake.etl.convert import parquet_bytes
from blocklake.format.arrow import decode_block
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types
from blocklake.stores.models import ProcessInfo

TYPES = event_types(1)  # revision 1 blocks: the later columns NULL
LAYOUT = {t.id: t for t in TYPES.values()}
START_NS = 1_779_998_400_000_000_000
PROCESS = ProcessInfo(str(uuid.UUID(int=5)), "x", "u", "c", START_NS, 100, 4_000)  # 4 kHz
STREAM, BLOCK = str(uuid.UUID(int=6)), str(uuid.UUID(int=7))


def sections(*encoded: tuple[str, list]) -> dict[str, pa.Table]:
    strings = StringTable()
    parts = [encode_section(TYPES[name], columns, strings) for name, columns in encoded]
    data = encode_block(
        stream_id=uuid.UUID(STREAM),
        sequence=0,
        begin_ticks=0,
        end_ticks=10**6,
        object_count=sum(len(columns[0]) for _, columns in encoded),
        sections=parts,
        strings=strings,
        compress=False,
    )
    return decode_block(data, LAYOUT).sections


def micros(ticks: int) -> int:
    return (START_NS + (ticks - PROCESS.start_ticks) * 10**9 // PROCESS.tick_frequency) // 1000


def read(table: pa.Table) -> list[dict]:
    """The rows as Parquet stores them (timestamps as microseconds)."""
    import io

    import pyarrow.parquet as pq

    stored = pq.read_table(io.BytesIO(parquet_bytes(table)))
    columns = {
        name: (column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column)
        for name, column in zip(stored.column_names, stored.columns, strict=True)
    }
    return pa.table(columns).to_pylist()


def test_log_entries_every_column() -> None:
    section = sections(
        ("log_entry", [[101, 103], [2, 7], ["a", "b"], ["m1", "m2"], [{"k": "v"}, None]])
    )["log_entry"]
    table = rows.log_entries(section, PROCESS, STREAM, BLOCK)
    assert table.schema.names == [f.name for f in table.schema]
    ids = {"process_id": PROCESS.process_id, "stream_id": STREAM, "block_id": BLOCK}
    # revision 1 blocks record no thread, span or trace
    later = dict.fromkeys(("thread_id", "thread_name", "span_id", "span_kind", "trace_id"))
    assert read(table) == [
        {**ids, "time": micros(101), "level": "ERROR", "target": "a", "message": "m1",
         "properties": [("k", "v")], "level_number": 17, **later},
        {**ids, "time": micros(103), "level": "LEVEL7", "target": "b", "message": "m2",
         "properties": [], "level_number": None, **later},  # no properties: an empty map
    ]  # fmt: skip


def test_measures_every_column() -> None:
    section = sections(("measure", [[100, 4_100], ["cpu", "mem"], ["%", "B"], [1.5, -2.0]]))
    table = rows.measures(section["measure"], PROCESS, STREAM, BLOCK)
    ids = {"process_id": PROCESS.process_id, "stream_id": STREAM, "block_id": BLOCK}
    assert read(table) == [
        {
            **ids,
            "time": micros(100),
            "name": "cpu",
            "unit": "%",
            "value": 1.5,
            "attributes": None,
            "attributes_num": None,
        },
        {
            **ids,
            "time": micros(4_100),
            "name": "mem",
            "unit": "B",
            "value": -2.0,
            "attributes": None,
            "attributes_num": None,
        },
    ]


def test_spans_are_paired_by_id_and_ordered_by_their_end() -> None:
    begins = [[110, 120, 130], [1, 2, 3], [0, 1, 1], [0, 1, 2]]
    begins += [["outer", "inner", "leaf"], ["t0", "t1", "t2"], ["f0", "f1", "f2"], [10, 20, 30]]
    found = sections(("thread_span_begin", begins), ("thread_span_end", [[150, 140], [1, 3]]))
    table = rows.spans(
        "thread_spans",
        found["thread_span_begin"],
        found["thread_span_end"],
        PROCESS,
        STREAM,
        BLOCK,
    )
    got = [
        {k: row[k] for k in ("span_id", "parent_span_id", "depth", "name", "target", "file",
                             "line", "begin", "end", "duration_ns", "block_id")}
        for row in read(table)
    ]  # fmt: skip
    ns = 10**9 // PROCESS.tick_frequency
    assert got == [
        {"span_id": 3, "parent_span_id": 1, "depth": 2, "name": "leaf", "target": "t2",
         "file": "f2", "line": 30, "begin": micros(130), "end": micros(140),
         "duration_ns": 10 * ns, "block_id": BLOCK},
        {"span_id": 1, "parent_span_id": 0, "depth": 0, "name": "outer", "target": "t0",
         "file": "f0", "line": 10, "begin": micros(110), "end": micros(150),
         "duration_ns": 40 * ns, "block_id": BLOCK},
    ]  # fmt: skip


def test_no_span_rows_without_begins_or_ends() -> None:
    found = sections(("thread_span_end", [[150], [1]]))
    assert (
        rows.spans("thread_spans", None, found["thread_span_end"], PROCESS, STREAM, BLOCK) is None
    )
    begins = [[110], [1], [0], [0], ["s"], ["t"], ["f"], [1]]
    found = sections(("thread_span_begin", begins))
    begins_only = found["thread_span_begin"]
    assert rows.spans("thread_spans", begins_only, None, PROCESS, STREAM, BLOCK) is None
    empty = begins_only.slice(0, 0).select([0, 1]).rename_columns(["ticks", "span_id"])
    assert rows.spans("thread_spans", begins_only, empty, PROCESS, STREAM, BLOCK) is None
