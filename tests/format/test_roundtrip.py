"""Wire round-trip: whatever the reference encoder writes, the Arrow decoder reads back unchanged.

Random sections of every built-in event type and of random user-defined types (ids >= 1000), in
compressed and uncompressed blocks; floats are compared bit for bit (nan, inf, -0.0). Also: fixed
columns are zero-copy views of the decompressed payload and strings are dictionary arrays.
"""

from __future__ import annotations

import math
import struct
import uuid

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocklake.format import arrow
from blocklake.format.arrow import decode_block, decode_payload
from blocklake.format.check import SPAN_FIELD_LIMITS, decompress
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import COMPRESSION_LZ4, COMPRESSION_NONE, parse_header
from blocklake.format.schema import EventType, Field, event_types

INT_RANGES = {
    "i64": (-(2**63), 2**63 - 1),
    "u64": (0, 2**64 - 1),
    "u32": (0, 2**32 - 1),
    "u8": (0, 255),
}

TEXT = st.one_of(
    st.sampled_from(["", "a", "é", "日本語", "\U0001f600", "\U00010348x", "\0", "line\nbreak"]),
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), max_size=4),
)
MAPS = st.one_of(st.none(), st.dictionaries(TEXT, TEXT, max_size=4))


def values_of(field_type: str) -> st.SearchStrategy:
    if field_type in INT_RANGES:
        low, high = INT_RANGES[field_type]
        return st.one_of(st.sampled_from([low, high, 0]), st.integers(low, high))
    if field_type == "f64":
        return st.one_of(
            st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 0.0, 5e-324]),
            st.floats(allow_nan=True, allow_infinity=True),
        )
    if field_type in ("str", "attrs"):  # attrs: a frozen set's text is encoded as it is
        return TEXT
    if field_type == "bool":
        return st.booleans()
    assert field_type == "map"
    return MAPS


def span_values(field: Field) -> st.SearchStrategy:
    """Span fields the lake's signed columns can hold (``SPAN_FIELD_LIMITS``)."""
    if field.name in SPAN_FIELD_LIMITS:
        return st.integers(0, SPAN_FIELD_LIMITS[field.name])
    return values_of(field.type)


ATTACHMENT_VALUES = {
    "attachment_id": st.uuids().map(str),
    "size": st.integers(0, 2**63 - 1),
    "sha256": st.binary(min_size=32, max_size=32).map(bytes.hex),
}
"""What an ``attachment`` event's checked fields hold (``format/check.py``)."""


def field_values(event_type: EventType, field: Field) -> st.SearchStrategy:
    if "span" in event_type.name:
        return span_values(field)
    if event_type.name == "attachment" and field.name in ATTACHMENT_VALUES:
        return ATTACHMENT_VALUES[field.name]
    return values_of(field.type)


@st.composite
def sections_of(draw: st.DrawFn, event_type: EventType) -> tuple[EventType, list[list]]:
    rows = draw(st.integers(0, 6))
    columns = [
        draw(
            st.lists(
                field_values(event_type, f),
                min_size=rows,
                max_size=rows,
                unique=f.name == "span_id" and "span" in event_type.name,  # one row per span
            )
        )
        for f in event_type.fields
    ]
    return event_type, columns


FIELD_TYPE_NAMES = sorted(["i64", "u64", "u32", "u8", "f64", "str", "map", "bool", "attrs"])


@st.composite
def user_types(draw: st.DrawFn) -> list[EventType]:
    ids = draw(st.lists(st.integers(1000, 65535), unique=True, max_size=3))
    result = []
    for number, type_id in enumerate(ids):
        names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True))
        fields = tuple(Field(name, draw(st.sampled_from(FIELD_TYPE_NAMES))) for name in names)
        result.append(EventType(type_id, f"user_{number}_{type_id}", fields))
    return result


@st.composite
def blocks(draw: st.DrawFn) -> tuple[dict[int, EventType], list[tuple[EventType, list[list]]]]:
    builtin = draw(
        st.lists(st.sampled_from(sorted(event_types().values(), key=lambda t: t.id)), unique=True)
    )
    chosen = builtin + draw(user_types())
    chosen = draw(st.permutations(chosen))
    sections = [draw(sections_of(event_type)) for event_type in chosen]
    return {t.id: t for t in chosen}, sections


def normalize(value: object) -> object:
    """Floats by their bits (nan == nan, -0.0 != 0.0); a map as its list of (key, value) pairs."""
    if isinstance(value, float):
        return ("f64", struct.pack("<d", value))
    if isinstance(value, dict):
        return [(normalize(k), normalize(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def expected_rows(event_type: EventType, columns: list[list]) -> list[dict]:
    rows = []
    for row in zip(*columns, strict=True) if columns and columns[0] else ():
        record = {}
        for field, value in zip(event_type.fields, row, strict=True):
            if field.type == "map":
                value = list((value or {}).items())  # no validity bitmap: None reads back empty
            record[field.name] = normalize(value)
        rows.append(record)
    return rows


def decoded_rows(table: pa.Table) -> list[dict]:
    return [{k: normalize(v) for k, v in row.items()} for row in table.to_pylist()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    block=blocks(),
    compress=st.booleans(),
    stream_id=st.uuids(),
    block_id=st.uuids(),
    sequence=st.integers(0, 2**63 - 1),  # u64 on the wire, below 2**63 (stores)
    ticks=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=2).map(sorted),
    extra_count=st.integers(0, 2**31),
)
def test_every_block_decodes_to_what_was_encoded(
    block, compress, stream_id, block_id, sequence, ticks, extra_count
) -> None:
    layout, sections = block
    # object_count bounds the events of every type but spans (replayed begins are not counted)
    object_count = extra_count + sum(
        len(columns[0]) for event_type, columns in sections if "span" not in event_type.name
    )
    strings = StringTable()
    encoded = [encode_section(event_type, columns, strings) for event_type, columns in sections]
    data = encode_block(
        stream_id=stream_id,
        block_id=block_id,
        sequence=sequence,
        begin_ticks=ticks[0],
        end_ticks=ticks[1],
        object_count=object_count,
        sections=encoded,
        strings=strings,
        compress=compress,
    )
    decoded = decode_block(data, layout)

    header = decoded.header
    assert (header.stream_id, header.block_id, header.sequence) == (stream_id, block_id, sequence)
    assert (header.begin_ticks, header.end_ticks) == (ticks[0], ticks[1])
    assert header.object_count == object_count
    assert header.compression == (COMPRESSION_LZ4 if compress else COMPRESSION_NONE)
    assert header.payload_size == len(data) - header.header_size
    # the sections come back in block order, with the rows that went in
    assert list(decoded.sections) == [event_type.name for event_type, _ in sections]
    for event_type, columns in sections:
        table = decoded.sections[event_type.name]
        assert table.column_names == [f.name for f in event_type.fields]
        assert decoded_rows(table) == expected_rows(event_type, columns)


def _sample_block(compress: bool) -> tuple[bytes, dict[int, EventType]]:
    known = event_types(1)
    strings = StringTable()
    log, measure = known["log_entry"], known["measure"]
    sections = [
        encode_section(
            log,
            [
                [10, 11, 12],
                [4, 2, 3],
                ["app", "app.db", "app"],
                ["hello", "\U0001f600 failed", ""],
                [{"k": "v"}, None, {}],
            ],
            strings,
        ),
        encode_section(measure, [[13, 14], ["cpu", "mem"], ["%", "bytes"], [1.5, -0.0]], strings),
    ]
    data = encode_block(
        stream_id=uuid.UUID(int=1),
        sequence=0,
        begin_ticks=10,
        end_ticks=14,
        object_count=5,
        sections=sections,
        strings=strings,
        compress=compress,
    )
    return data, {log.id: log, measure.id: measure}


@pytest.mark.parametrize("compress", [True, False])
def test_fixed_columns_are_views_of_the_decompressed_payload(compress, monkeypatch) -> None:
    readers: list[arrow._Reader] = []

    class SpyReader(arrow._Reader):
        def __init__(self, payload: bytes) -> None:
            super().__init__(payload)
            readers.append(self)

    monkeypatch.setattr(arrow, "_Reader", SpyReader)
    data, layout = _sample_block(compress)
    decoded = decode_block(data, layout)
    (reader,) = readers
    low, high = reader.buffer.address, reader.buffer.address + reader.buffer.size

    def inside(buffer: pa.Buffer) -> bool:
        return low <= buffer.address and buffer.address + buffer.size <= high

    for name, table in decoded.sections.items():
        for column_name, column in zip(table.column_names, table.columns, strict=True):
            (chunk,) = column.chunks
            if pa.types.is_map(chunk.type):
                continue
            if pa.types.is_dictionary(chunk.type):
                # the indices are the refs as written, the dictionary the block's string table
                assert inside(chunk.indices.buffers()[1]), (name, column_name)
                assert inside(chunk.dictionary.buffers()[1]), (name, column_name)
                assert inside(chunk.dictionary.buffers()[2]), (name, column_name)
            else:
                assert inside(chunk.buffers()[1]), (name, column_name)


def test_payload_buffer_is_not_copied_by_the_reader() -> None:
    data, layout = _sample_block(compress=True)
    payload = decompress(data, parse_header(data))
    sections = decode_payload(payload, layout)
    base = pa.py_buffer(payload).address
    ticks = sections["log_entry"]["ticks"].chunks[0].buffers()[1]
    assert base <= ticks.address < base + len(payload)
    assert ticks.address % 8 == 0  # columns are 8-byte aligned in the payload


def test_string_columns_are_dictionary_arrays_over_the_string_table() -> None:
    data, layout = _sample_block(compress=True)
    decoded = decode_block(data, layout)
    logs, measures = decoded.sections["log_entry"], decoded.sections["measure"]
    for table, names in ((logs, ["target", "message"]), (measures, ["name", "unit"])):
        for name in names:
            column_type = table.schema.field(name).type
            assert pa.types.is_dictionary(column_type)
            assert column_type.index_type == pa.uint32()
            assert column_type.value_type == pa.string()
    # one string table per block: every string column shares it, each distinct string once
    dictionary = logs["target"].chunks[0].dictionary
    assert dictionary.equals(measures["unit"].chunks[0].dictionary)
    assert len(set(dictionary.to_pylist())) == len(dictionary)
    assert pa.types.is_map(logs.schema.field("properties").type)
    assert logs["properties"].to_pylist() == [[("k", "v")], [], []]
    assert [struct.pack("<d", v) for v in measures["value"].to_pylist()] == [
        struct.pack("<d", 1.5),
        struct.pack("<d", -0.0),
    ]


def test_a_string_the_sdk_cannot_encode_as_utf8_does_not_spoil_the_block() -> None:
    """A lone surrogate (os.fsdecode of a non-UTF-8 file name, a bad C extension) must not make
    the encoder write a string table the decoder rejects: the block's other events would be lost."""
    measure = event_types(1)["measure"]
    strings = StringTable()
    section = encode_section(
        measure, [[1, 2], ["file:\udcff", "ok"], ["", ""], [1.0, 2.0]], strings
    )
    data = encode_block(
        stream_id=uuid.UUID(int=2),
        sequence=0,
        begin_ticks=1,
        end_ticks=2,
        object_count=2,
        sections=[section],
        strings=strings,
    )
    table = decode_block(data, {measure.id: measure}).sections["measure"]
    names = table["name"].to_pylist()
    assert names[1] == "ok"
    assert names[0].startswith("file:")
    assert table["value"].to_pylist() == [1.0, 2.0]
