"""Forward and backward compatibility of the wire format (transit-v1.md, "Revision 2"): blocks of
the revision 1 encoder (the committed vectors) convert unchanged, with NULL in the later columns;
a block of a newer writer (fields and a built-in type this code does not know, a user-defined
type) converts what it knows; layouts may evolve only by appending fields."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from blocklake.etl.convert import BlockConverter
from blocklake.format.arrow import decode_block
from blocklake.format.schema import (
    SchemaError,
    event_types,
    layout_from_json,
    layout_to_json,
)
from blocklake.lake.staging import parquet_bytes
from blocklake.stores.models import ProcessInfo, StreamInfo

VECTORS = Path(__file__).resolve().parents[2] / "schemas" / "vectors"
PROCESS = ProcessInfo(
    "9a1c0e2b-57d4-4f0a-8c3e-1b2d3e4f5a6b", "exe", "user", "host", 1_700_000_000 * 10**9, 0, 10**9
)
PROCESS_HEX = PROCESS.process_id.replace("-", "")


def convert(name: str) -> dict[str, pa.Table]:
    """The vector's block through the ETL's row building and back from Parquet bytes."""
    import io

    import pyarrow.parquet as pq

    data = (VECTORS / f"{name}.blk").read_bytes()
    document = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    layout = layout_from_json(document["layout"])
    decoded = decode_block(data, layout)
    stream = StreamInfo("s", "p", (), layout)
    return {
        table: pq.read_table(io.BytesIO(parquet_bytes(rows)))
        for table, rows in BlockConverter._event_tables(
            decoded.sections, PROCESS, stream, "b", decoded.header
        )
    }


def test_v1_logs_convert_with_the_later_columns_null() -> None:
    (table,) = convert("logs").values()
    rows = table.to_pylist()
    assert len(rows) == 8
    assert [r["level"] for r in rows[:6]] == ["INFO", "WARN", "ERROR", "DEBUG", "FATAL", "TRACE"]
    assert [r["level_number"] for r in rows[:6]] == [9, 13, 17, 5, 21, 1]
    for column in ("thread_id", "thread_name", "span_id", "span_kind", "trace_id"):
        assert table[column].null_count == 8, column
    assert rows[0]["properties"] == [("version", "1.2.3"), ("pid", "4242")]


def test_v1_measures_and_spans_convert_with_the_later_columns_null() -> None:
    (measures,) = convert("measures").values()
    assert measures.num_rows == 7
    assert measures["attributes"].null_count == measures["attributes_num"].null_count == 7
    (spans,) = convert("thread_spans").values()
    assert spans.num_rows == 4
    for column in ("trace_id", "remote_parent_id", "status", "exception_type", "attributes"):
        assert spans[column].null_count == 4, column
    assert sorted(spans["span_id"].to_pylist()) == [1, 4, 5, 6]


def test_v2_logs_convert_their_correlation() -> None:
    (table,) = convert("logs_v2").values()
    got = [
        (r["thread_id"], r["thread_name"], r["span_id"], r["span_kind"], r["trace_id"])
        for r in table.to_pylist()
    ]
    trace = "0af7651916cd43dd8448eb211c80319c"
    assert got == [
        (4242, "MainThread", None, None, None),
        (4243, "worker-1", 12, "thread", trace),
        (4243, "worker-1", 13, "async", trace),
        (4244, None, -1, "remote", trace),  # a W3C id of 2^64 - 1, as a signed int64
    ]


def test_v2_spans_convert_status_exception_remote_parent_and_typed_attributes() -> None:
    (table,) = convert("spans_v2").values()
    rows = {r["name"]: r for r in table.to_pylist()}
    handle = rows["handle_request"]
    assert (handle["status"], handle["exception_type"], handle["exception_message"]) == (
        "error",
        "ValueError",
        "bad cart",
    )
    assert handle["remote_parent_id"] == 2**63 + 5 - 2**64
    assert dict(handle["attributes"]) == {
        "route": "/cart",
        "status_code": "500",
        "cached": "false",
        "ratio": "0.25",
    }
    assert dict(handle["attributes_num"]) == {"status_code": 500.0, "ratio": 0.25}
    assert rows["render"]["status"] == "ok" and rows["render"]["exception_type"] is None
    assert rows["load_cart"]["attributes"] == [] and rows["load_cart"]["remote_parent_id"] is None
    traces = {r["name"]: r["trace_id"] for r in rows.values()}
    assert {traces[n] for n in ("handle_request", "load_cart", "render")} == {
        "0af7651916cd43dd8448eb211c80319c"
    }
    # a trace this process started: the process id's first 16 hex digits, then the root's id
    assert traces["cleanup"] == traces["vacuum"] == f"{PROCESS_HEX[:16]}{14:016x}"


def test_a_newer_writer_converts_what_this_reader_knows() -> None:
    tables = convert("evolved")
    # the built-in type 900 this code does not know: in the raw block only, no table, no error
    assert set(tables) == {"measures", "events_checkout"}
    measures = tables["measures"]
    assert measures.column_names == [c.name for c in event_table_columns("measures")]
    assert [dict(r["attributes"]) for r in measures.to_pylist()] == [{"route": "/cart"}] * 2
    checkout = tables["events_checkout"].to_pylist()
    assert [(r["order_id"], r["amount"], r["currency"], r["ok"]) for r in checkout] == [
        (7, 9.5, "EUR", True),
        (8, 0.0, "", False),
    ]
    assert [(r["span_id"], r["span_kind"]) for r in checkout] == [(11, "thread"), (None, None)]


def event_table_columns(name: str):
    from blocklake.format.schema import tables

    return tables()[name].columns


def test_layouts_of_every_revision_are_accepted() -> None:
    for revision in (1, 2):
        layout = layout_to_json(list(event_types(revision).values()))
        assert len(layout_from_json(layout)) == len(layout)
    # a newer SDK's: a field appended to a built-in type, a built-in id this code lacks
    newer = layout_to_json([event_types()["measure"]])
    newer[0]["fields"].append({"name": "sample_rate", "type": "f64"})
    newer.append({"id": 900, "name": "profile", "fields": [{"name": "ticks", "type": "i64"}]})
    assert [t.name for t in layout_from_json(newer).values()] == ["measure", "profile"]


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda fields: fields.pop(1), ["log_entry", "first fields", "level"]),
        (lambda fields: fields.insert(1, {"name": "x", "type": "u8"}), ["first fields"]),
        (lambda fields: fields.__setitem__(5, {"name": "thread_id", "type": "str"}),
         ["thread_id", "'u64'", "'str'"]),
        (lambda fields: fields.append({"name": "ticks", "type": "i64"}), ["ticks", "twice"]),
        (lambda fields: fields.append({"name": "x", "type": "f32"}), ["x", "f32"]),
    ],
)  # fmt: skip
def test_a_built_in_type_may_only_gain_fields_at_its_end(change, words: list[str]) -> None:
    (log_entry,) = layout_to_json([event_types()["log_entry"]])
    change(log_entry["fields"])
    with pytest.raises(SchemaError) as raised:
        layout_from_json([log_entry])
    for word in words:
        assert word in str(raised.value)


def test_a_built_in_id_or_name_cannot_be_taken_by_another_type() -> None:
    (log_entry,) = layout_to_json([event_types(1)["log_entry"]])
    with pytest.raises(SchemaError, match="'log_entry'"):
        layout_from_json([{**log_entry, "name": "my_logs"}])
    with pytest.raises(SchemaError, match="built in with id 1"):
        layout_from_json([{**log_entry, "id": 1000}])
    with pytest.raises(SchemaError, match="built in with id 2"):
        layout_from_json([{"id": 500, "name": "measure", "fields": log_entry["fields"]}])
