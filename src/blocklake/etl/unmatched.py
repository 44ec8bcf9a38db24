"""Span events of one block that pair with nothing in it, as rows of ``unmatched_spans``.

``rows.spans`` pairs a block's begins and ends by ``span_id``; what it cannot pair is kept here
rather than dropped:

- a begin without an end in the block is a span still open at the block's end (the SDK
  replays it in the stream's next block, where it ends or stays open). The latest block's are
  the spans open at the end of what the lake holds: still running, or never ended because the
  process crashed or was killed (the ``open_spans`` view, ``schemas/views.toml``);
- an end without a begin: ingest refuses such a block (``format.check``), but a block accepted
  before that check, or one whose stream's layout lacks the begin type, would otherwise lose
  the end without a trace.

Vectorized like ``rows``: a membership test per kind, no Python loop over rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from blocklake.etl.rows import ARROW_COLUMN_TYPES, _conform, times_ns, timestamps
from blocklake.stores.models import ProcessInfo

KINDS = {"thread": "thread_span", "async": "async_span"}
"""``kind`` column value and the prefix of its begin and end event types."""
_TEXT = ("name", "target", "file")


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Strings as plain strings (these rows are few: dictionaries would only complicate the
    concatenation of begins with ends, which have no names)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def _part(
    kind: str,
    unmatched: str,
    columns: dict[str, pa.Array],
    rows: int,
) -> dict[str, pa.Array]:
    """All columns of one part (begins or ends of one kind), missing ones null."""
    part = {
        "kind": pa.array([kind] * rows, pa.string()),
        "unmatched": pa.array([unmatched] * rows, pa.string()),
    }
    for name in ("span_id", "parent_span_id", "depth", "line", *_TEXT, "begin_ns", "end_ns"):
        part[name] = columns.get(name, pa.nulls(rows))
    return part


def unmatched_spans(
    sections: dict[str, pa.Table],
    process: ProcessInfo,
    stream_id: str,
    block_id: str,
    sequence: int,
    block_ticks: tuple[int, int],
) -> pa.Table | None:
    """Rows of ``unmatched_spans`` for one decoded block (``sections`` by event type name),
    begins first then ends, each in event order; None when every span event pairs.
    ``block_ticks``: the block header's begin and end ticks."""
    parts = []
    for kind, prefix in KINDS.items():
        begins = sections.get(f"{prefix}_begin")
        ends = sections.get(f"{prefix}_end")
        begin_ids = begins["span_id"] if begins is not None else pa.array([], pa.uint64())
        end_ids = ends["span_id"] if ends is not None else pa.array([], pa.uint64())
        if begins is not None and begins.num_rows:
            open_ = begins.filter(pc.invert(pc.is_in(begins["span_id"], value_set=end_ids)))
            if open_.num_rows:
                columns = {name: _plain(open_[name]) for name in open_.column_names}
                columns["begin_ns"] = times_ns(open_["ticks"], process)
                parts.append(_part(kind, "begin", columns, open_.num_rows))
        if ends is not None and ends.num_rows:
            lost = ends.filter(pc.invert(pc.is_in(ends["span_id"], value_set=begin_ids)))
            if lost.num_rows:
                columns = {"span_id": lost["span_id"].combine_chunks()}
                columns["end_ns"] = times_ns(lost["ticks"], process)
                parts.append(_part(kind, "end", columns, lost.num_rows))
    if not parts:
        return None
    rows = sum(len(part["kind"]) for part in parts)
    unit = ARROW_COLUMN_TYPES["timestamp"]
    merged = {
        name: pa.concat_arrays([pc.cast(part[name], _type(name)) for part in parts])
        for name in parts[0]
    }
    block_begin, block_end = (process.time_ns(ticks) for ticks in block_ticks)
    return _conform(
        "unmatched_spans",
        {
            "process_id": pa.array([process.process_id] * rows, pa.string()),
            "stream_id": pa.array([stream_id] * rows, pa.string()),
            "block_id": pa.array([block_id] * rows, pa.string()),
            "sequence": pa.array([sequence] * rows, pa.int64()),
            **{name: merged[name] for name in ("kind", "unmatched", "span_id", "parent_span_id")},
            **{name: merged[name] for name in ("depth", *_TEXT, "line")},
            "begin": timestamps(merged["begin_ns"], unit),
            "end": timestamps(merged["end_ns"], unit),
            "block_begin": timestamps(pa.array([block_begin] * rows, pa.int64()), unit),
            "block_end": timestamps(pa.array([block_end] * rows, pa.int64()), unit),
            "open_ns": pc.subtract(pa.scalar(block_end, pa.int64()), merged["begin_ns"]),
        },
    )


def _type(name: str) -> pa.DataType:
    if name in ("kind", "unmatched", *_TEXT):
        return pa.string()
    if name in ("depth", "line"):
        return pa.int32()
    return pa.int64()
