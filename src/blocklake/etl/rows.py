"""From decoded event sections to rows of the lake tables (Arrow, vectorized, no Python loops)."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.compute as pc

from blocklake.format.schema import log_levels
from blocklake.format.tables import ARROW_COLUMN_TYPES, arrow_schema
from blocklake.stores.models import ProcessInfo

NANOSECONDS = pa.timestamp("ns", tz="UTC")


_EXACT_INT64_FREQUENCY = (2**63 - 1) // 1_000_000_000
"""Highest tick frequency whose remainder (below it) times 10**9 fits an int64."""


def times_ns(ticks: pa.ChunkedArray | pa.Array, process: ProcessInfo) -> pa.Array:
    """Ticks of the process clock to nanoseconds since the epoch (UTC), exactly as
    ``ProcessInfo.time_ns`` (integer arithmetic: whole seconds by floor division, then the
    remainder scaled), with checked int64 operations: ingest accepted only ticks whose time
    fits, so nothing overflows, and if something did it would fail rather than wrap."""
    if isinstance(ticks, pa.ChunkedArray):
        ticks = ticks.combine_chunks()
    frequency = process.tick_frequency
    delta = pc.subtract_checked(ticks, process.start_ticks)
    if frequency == 1_000_000_000:
        return pc.add_checked(delta, process.start_time_ns)
    if frequency > _EXACT_INT64_FREQUENCY:
        # Clocks above ~9.2 GHz: the scaled remainder needs more than 64 bits; Python's
        # integers compute it exactly (such clocks are rare, so the loop costs little).
        return pa.array(
            [None if tick is None else process.time_ns(tick) for tick in ticks.to_pylist()],
            pa.int64(),
        )
    # Arrow's integer division truncates toward zero: step down where the remainder is negative.
    seconds = pc.divide_checked(delta, frequency)
    remainder = pc.subtract_checked(delta, pc.multiply_checked(seconds, frequency))
    negative = pc.less(remainder, 0)
    seconds = pc.if_else(negative, pc.subtract(seconds, 1), seconds)
    remainder = pc.if_else(negative, pc.add(remainder, frequency), remainder)
    fraction = pc.divide_checked(pc.multiply_checked(remainder, 1_000_000_000), frequency)
    nanoseconds = pc.add_checked(pc.multiply_checked(seconds, 1_000_000_000), fraction)
    return pc.add_checked(nanoseconds, process.start_time_ns)


def timestamps(nanoseconds: pa.ChunkedArray | pa.Array, unit: pa.DataType) -> pa.Array:
    """Nanoseconds since the epoch as the lake's timestamp type (truncated to its unit)."""
    return pc.cast(pc.cast(nanoseconds, NANOSECONDS), unit, safe=False)


def times(ticks: pa.ChunkedArray | pa.Array, process: ProcessInfo) -> pa.Array:
    """Ticks of the process clock to the lake's UTC timestamps."""
    return timestamps(times_ns(ticks, process), ARROW_COLUMN_TYPES["timestamp"])


@functools.cache
def _level_names() -> pa.Array:
    codes = log_levels()
    return pa.array([codes.get(code, f"LEVEL{code}") for code in range(256)])


def _conform(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    """Columns in the table's order and types; dictionary-encoded strings stay encoded."""
    schema = arrow_schema(name)
    arrays = []
    for field in schema:
        array = columns[field.name]
        if pa.types.is_dictionary(array.type) and field.type == pa.string():
            arrays.append(array)
        else:
            arrays.append(pc.cast(array, field.type))
    return pa.Table.from_arrays(arrays, names=schema.names)


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    """A column repeating one string, stored once."""
    return pa.DictionaryArray.from_arrays(
        pa.nulls(rows, pa.int32()).fill_null(0), pa.array([value])
    )


def _ids(process: ProcessInfo, stream_id: str, block_id: str, rows: int) -> dict[str, pa.Array]:
    return {
        "process_id": _constant(process.process_id, rows),
        "stream_id": _constant(stream_id, rows),
        "block_id": _constant(block_id, rows),
    }


def log_entries(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    levels = pa.DictionaryArray.from_arrays(section["level"].combine_chunks(), _level_names())
    return _conform(
        "log_entries",
        {
            **_ids(process, stream_id, block_id, section.num_rows),
            "time": times(section["ticks"], process),
            "level": levels,
            "target": section["target"].combine_chunks(),
            "message": section["message"].combine_chunks(),
            "properties": section["properties"].combine_chunks(),
        },
    )


def measures(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    return _conform(
        "measures",
        {
            **_ids(process, stream_id, block_id, section.num_rows),
            "time": times(section["ticks"], process),
            "name": section["name"].combine_chunks(),
            "unit": section["unit"].combine_chunks(),
            "value": section["value"].combine_chunks(),
        },
    )


def spans(
    table: str,
    begins: pa.Table | None,
    ends: pa.Table | None,
    process: ProcessInfo,
    stream_id: str,
    block_id: str,
) -> pa.Table | None:
    """Begin and end events paired by span id into one row per span whose end is in the block
    (span ids are unique among a block's begins and among its ends: ``format.check``)."""
    if begins is None or ends is None or ends.num_rows == 0:
        return None
    begins = begins.rename_columns(["begin_ticks", *begins.column_names[1:]])
    ends = ends.rename_columns(["end_ticks", "span_id"])
    # The join cannot carry dictionary columns: it carries their indices, and the strings are
    # put back afterwards over the same dictionaries, never expanded to one string per row.
    dictionaries = {}
    columns = []
    for name, column in zip(begins.column_names, begins.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            combined = column.combine_chunks()
            dictionaries[name] = combined.dictionary
            column = combined.indices
        columns.append(column)
    begins = pa.Table.from_arrays(columns, names=begins.column_names)
    paired = ends.join(begins, "span_id", join_type="inner").sort_by("end_ticks")
    paired = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(column.combine_chunks(), dictionaries[name])
            if name in dictionaries
            else column
            for name, column in zip(paired.column_names, paired.columns, strict=True)
        ],
        names=paired.column_names,
    )
    begin_ns = times_ns(paired["begin_ticks"], process)
    end_ns = times_ns(paired["end_ticks"], process)
    unit = ARROW_COLUMN_TYPES["timestamp"]
    return _conform(
        table,
        {
            **_ids(process, stream_id, block_id, paired.num_rows),
            **{name: paired[name] for name in ("span_id", "parent_span_id", "depth")},
            **{name: paired[name] for name in ("name", "target", "file", "line")},
            "begin": timestamps(begin_ns, unit),
            "end": timestamps(end_ns, unit),
            "duration_ns": pc.subtract(end_ns, begin_ns),
        },
    )


ATTACHMENT_PATH = "/v1/attachments/"
"""The API path that downloads an attachment, followed by its id (the ``link`` column)."""


def attachments(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    ids = section["attachment_id"].combine_chunks()
    links = pc.binary_join_element_wise(ATTACHMENT_PATH, pc.cast(ids, pa.string()), "")
    return _conform(
        "attachments",
        {
            **_ids(process, stream_id, block_id, section.num_rows),
            "time": times(section["ticks"], process),
            "attachment_id": ids,
            "name": section["name"].combine_chunks(),
            "content_type": section["content_type"].combine_chunks(),
            "size": section["size"].combine_chunks(),
            "sha256": section["sha256"].combine_chunks(),
            "attributes": section["attributes"].combine_chunks(),
            "link": links,
        },
    )
