"""From decoded event sections to rows of the lake tables (Arrow, vectorized; Python runs once
per distinct attribute set of a block, never per row).

A section holds the fields of the layout its stream registered: blocks of transit revision 1
lack the later fields, whose columns are then NULL; fields this code does not know are left in
the raw block.
"""

from __future__ import annotations

import functools
import json

import pyarrow as pa
import pyarrow.compute as pc

from blocklake.format.schema import EventType, log_levels, severity_numbers
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


@functools.cache
def _severity_numbers() -> pa.Array:
    numbers = severity_numbers()
    codes = log_levels()
    return pa.array([numbers.get(codes.get(code, ""), None) for code in range(256)], pa.int32())


SPAN_KINDS = {1: "thread", 2: "async", 3: "remote"}
"""``log_entry.span_kind`` codes as the lake spells them (0: no span, NULL)."""
STATUSES = {0: "ok", 1: "error"}


@functools.cache
def _code_names(names: tuple[tuple[int, str], ...], null_code: int | None) -> pa.Array:
    """A dictionary for u8 codes: the name of each known code, ``code<n>`` for others."""
    known = dict(names)
    return pa.array(
        [None if code == null_code else known.get(code, f"code{code}") for code in range(256)]
    )


def _coded(codes: pa.ChunkedArray, names: dict[int, str], null_code: int | None) -> pa.Array:
    return pc.take(_code_names(tuple(names.items()), null_code), codes.combine_chunks())


def _empty_as_null(column: pa.ChunkedArray) -> pa.Array:
    """A string column (dictionary-encoded, as decoded) with its empty strings as NULL."""
    column = column.combine_chunks()
    dictionary = column.dictionary
    empty = pc.index(dictionary, "").as_py()
    if empty < 0:
        return column
    indices = pc.if_else(pc.equal(column.indices, empty), None, column.indices)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _zero_as_null(column: pa.ChunkedArray) -> pa.Array:
    """A u64 id as the lake's int64 (ids of 2^63 and up, W3C remote ids, wrap to negative),
    0 (none) as NULL."""
    values = pc.cast(column.combine_chunks(), pa.int64(), safe=False)
    return pc.if_else(pc.equal(values, 0), None, values)


def _field(section: pa.Table, name: str, rows: int, make) -> pa.Array:
    """``make(column)`` of the section's field ``name``, or NULLs if its layout predates it."""
    if name in section.column_names:
        return make(section[name])
    return pa.nulls(rows)


_ATTRIBUTE_MAPS = (
    pa.map_(pa.string(), pa.string()),
    pa.map_(pa.string(), pa.float64()),
)


def _attribute_text(value: object) -> str | None:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        return value
    if type(value) in (int, float):
        return repr(value)
    return None if value is None else json.dumps(value)


def _parse_attributes(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
    """(every attribute as text, the numeric ones as floats) of one wire text; a text that is
    not a JSON object is kept whole under the key ``attributes``."""
    if not text:
        return [], []
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        return [("attributes", text)], []
    texts = [(k, t) for k, v in values.items() if (t := _attribute_text(v)) is not None]
    numbers = [(k, number) for k, v in values.items() if (number := _number(v)) is not None]
    return texts, numbers


def _number(value: object) -> float | None:
    """An int or float attribute as a float (an int beyond a float's range: None)."""
    if type(value) is float:
        return value
    if type(value) is int and abs(value) < 2**1023:
        return float(value)
    return None


def attribute_maps(column: pa.ChunkedArray | None, rows: int) -> tuple[pa.Array, pa.Array]:
    """An ``attrs`` column (references to JSON texts) as the two attribute maps: each distinct
    text is parsed once, then its maps are taken for every row that refers to it."""
    if column is None:
        return pa.nulls(rows, _ATTRIBUTE_MAPS[0]), pa.nulls(rows, _ATTRIBUTE_MAPS[1])
    column = column.combine_chunks()
    distinct = pc.unique(column.indices)
    parsed = [_parse_attributes(text) for text in column.dictionary.take(distinct).to_pylist()]
    position = pc.index_in(column.indices, distinct)
    texts = pa.array([p[0] for p in parsed], _ATTRIBUTE_MAPS[0]).take(position)
    numbers = pa.array([p[1] for p in parsed], _ATTRIBUTE_MAPS[1]).take(position)
    return texts, numbers


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


def _correlation(section: pa.Table) -> dict[str, pa.Array]:
    """The thread, span and trace a log entry or user-defined event recorded (NULL where the
    layout predates them, or where there was none)."""
    rows = section.num_rows
    return {
        "thread_id": _field(section, "thread_id", rows, _zero_as_null),
        "thread_name": _field(section, "thread_name", rows, _empty_as_null),
        "span_id": _field(section, "span_id", rows, _zero_as_null),
        "span_kind": _field(section, "span_kind", rows, lambda c: _coded(c, SPAN_KINDS, 0)),
        "trace_id": _field(section, "trace_id", rows, _empty_as_null),
    }


def log_entries(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    codes = section["level"].combine_chunks()
    levels = pa.DictionaryArray.from_arrays(codes, _level_names())
    return _conform(
        "log_entries",
        {
            **_ids(process, stream_id, block_id, section.num_rows),
            "time": times(section["ticks"], process),
            "level": levels,
            "target": section["target"].combine_chunks(),
            "message": section["message"].combine_chunks(),
            "properties": section["properties"].combine_chunks(),
            "level_number": pc.take(_severity_numbers(), codes),
            **_correlation(section),
        },
    )


def measures(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    rows = section.num_rows
    attributes = section["attributes"] if "attributes" in section.column_names else None
    texts, numbers = attribute_maps(attributes, rows)
    return _conform(
        "measures",
        {
            **_ids(process, stream_id, block_id, rows),
            "time": times(section["ticks"], process),
            "name": section["name"].combine_chunks(),
            "unit": section["unit"].combine_chunks(),
            "value": section["value"].combine_chunks(),
            "attributes": texts,
            "attributes_num": numbers,
        },
    )


USER_TABLE_PREFIX = "events_"
"""User-defined event type ``name`` goes to the table ``events_<name, lower case>``."""
_USER_COLUMN_TYPES = {
    "i64": pa.int64(),
    "u64": pa.int64(),
    "u32": pa.int64(),
    "u8": pa.int32(),
    "f64": pa.float64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "map": pa.map_(pa.string(), pa.string()),
    "attrs": _ATTRIBUTE_MAPS[0],
}
"""The lake's column type of each field type of a user-defined event."""
_CORRELATION_FIELDS = frozenset({"thread_id", "thread_name", "span_id", "span_kind", "trace_id"})


def user_table_name(event_type: EventType) -> str:
    return f"{USER_TABLE_PREFIX}{event_type.name.lower()}"


def user_events(
    section: pa.Table,
    event_type: EventType,
    process: ProcessInfo,
    stream_id: str,
    block_id: str,
) -> pa.Table:
    """Rows of ``user_table_name(event_type)``: ids, time, correlation, then the type's own
    fields in layout order (its ``ticks`` become ``time``)."""
    rows = section.num_rows
    columns: dict[str, pa.Array] = {
        **_ids(process, stream_id, block_id, rows),
        "time": times(section["ticks"], process),
        **_correlation(section),
    }
    for field in event_type.fields:
        if field.name == "ticks" or field.name in _CORRELATION_FIELDS or field.name in columns:
            continue
        column = section[field.name]
        if field.type == "attrs":
            columns[field.name] = attribute_maps(column, rows)[0]
        elif field.type in ("str", "map"):
            columns[field.name] = column.combine_chunks()
        else:
            target = _USER_COLUMN_TYPES[field.type]
            columns[field.name] = pc.cast(column.combine_chunks(), target, safe=False)
    arrays = [
        array
        if pa.types.is_dictionary(array.type) or name not in _CORRELATION_FIELDS
        else array.cast(_CORRELATION_TYPES[name])
        for name, array in columns.items()
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


_CORRELATION_TYPES = {
    "thread_id": pa.int64(),
    "thread_name": pa.string(),
    "span_id": pa.int64(),
    "span_kind": pa.string(),
    "trace_id": pa.string(),
}


def trace_prefix(process: ProcessInfo) -> str:
    """The high half of the trace ids a process started: its id's first 16 hex digits (the SDK
    makes the same, ``recording.set_trace_prefix``)."""
    return process.process_id.replace("-", "")[:16].lower()


def _span_traces(paired: pa.Table, process: ProcessInfo) -> pa.Array:
    """Each span's trace id: its ``trace_id`` text (from a context), else made from its
    ``trace_root`` (a root span of the process), formatted once per distinct root."""
    rows = paired.num_rows
    texts = _field(paired, "trace_id", rows, _empty_as_null)
    if "trace_root" not in paired.column_names:
        return texts
    roots = paired["trace_root"].combine_chunks()
    distinct = pc.unique(roots)
    prefix = trace_prefix(process)
    made = pa.array(
        [f"{prefix}{root:016x}" if root else None for root in distinct.to_pylist()], pa.string()
    )
    from_roots = made.take(pc.index_in(roots, distinct))
    return pc.coalesce(pc.cast(texts, pa.string()), from_roots)


def _indices_of(table: pa.Table, dictionaries: dict[str, pa.Array]) -> pa.Table:
    """``table`` with each dictionary column as its indices, its dictionary put in
    ``dictionaries`` by column name."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            combined = column.combine_chunks()
            dictionaries[name] = combined.dictionary
            column = combined.indices
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


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
    ends = ends.rename_columns(
        ["end_ticks", "span_id", *(f"end_{name}" for name in ends.column_names[2:])]
    )
    # The join cannot carry dictionary columns: it carries their indices, and the strings are
    # put back afterwards over the same dictionaries, never expanded to one string per row.
    dictionaries: dict[str, pa.Array] = {}
    begins, ends = _indices_of(begins, dictionaries), _indices_of(ends, dictionaries)
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
    rows = paired.num_rows
    attributes = paired["attributes"] if "attributes" in paired.column_names else None
    texts, numbers = attribute_maps(attributes, rows)
    return _conform(
        table,
        {
            **_ids(process, stream_id, block_id, rows),
            **{name: paired[name] for name in ("span_id", "parent_span_id", "depth")},
            **{name: paired[name] for name in ("name", "target", "file", "line")},
            "begin": timestamps(begin_ns, unit),
            "end": timestamps(end_ns, unit),
            "duration_ns": pc.subtract(end_ns, begin_ns),
            "trace_id": _span_traces(paired, process),
            "remote_parent_id": _field(paired, "remote_parent_id", rows, _zero_as_null),
            "status": _field(paired, "end_status", rows, lambda c: _coded(c, STATUSES, None)),
            "exception_type": _field(paired, "end_exception_type", rows, _empty_as_null),
            "exception_message": _field(paired, "end_exception_message", rows, _empty_as_null),
            "attributes": texts,
            "attributes_num": numbers,
        },
    )


ATTACHMENT_PATH = "/v1/attachments/"
"""The API path that downloads an attachment, followed by its id (the ``link`` column)."""
_ATTACHMENT_ID = r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\z"


def attachments(section: pa.Table, process: ProcessInfo, stream_id: str, block_id: str) -> pa.Table:
    ids = section["attachment_id"].combine_chunks()
    # Ingest refuses an event whose id is no lowercase UUID (format/check.py); a block stored
    # before that check gets no link for it rather than a path such as ../../v1/query.
    valid = pc.match_substring_regex(pc.cast(ids, pa.string()), _ATTACHMENT_ID)
    links = pc.if_else(
        valid,
        pc.binary_join_element_wise(ATTACHMENT_PATH, pc.cast(ids, pa.string()), ""),
        pa.scalar(None, pa.string()),
    )
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
