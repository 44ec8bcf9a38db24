"""The encoder's parts byte for byte: the string table, map columns, attributes, sections and the
block envelope (issue 16: mutation testing found these unasserted outside a round trip)."""

from __future__ import annotations

import enum
import struct
import uuid
import zlib
from array import array

import lz4.block
import pytest

from blocklake.format.encode import (
    EMPTY_ATTRIBUTES,
    Attributes,
    StringTable,
    _map_column,
    attributes_texts,
    encode_block,
    encode_section,
)
from blocklake.format.header import HEADER_SIZE, parse_header
from blocklake.format.schema import EventType, Field, event_types

MEASURE = event_types()["measure"]
SPAN_END_V1 = event_types(1)["thread_span_end"]


def test_strings_are_referenced_by_their_index_in_first_seen_order() -> None:
    strings = StringTable()
    assert strings.refs(["b", "a", "b"]) == array("I", [0, 1, 0])
    assert strings.refs(["a", "c"]) == array("I", [1, 2])
    assert strings.index == {"b": 0, "a": 1, "c": 2}


def test_the_string_table_is_count_offsets_bytes_padded_to_8() -> None:
    strings = StringTable()
    strings.refs(["ab", "é", ""])
    head = struct.pack("<I4i", 3, 0, 2, 4, 4) + b"ab\xc3\xa9"
    assert len(head) == 24
    assert strings.encode() == head
    assert strings.longest == 2
    strings.refs(["xyz"])
    assert strings.encode() == struct.pack("<I5i", 4, 0, 2, 4, 4, 7) + b"ab\xc3\xa9xyz" + b"\0"
    assert strings.longest == 3


def test_an_empty_string_table_and_a_lone_surrogate() -> None:
    empty = StringTable()
    assert empty.longest == 0
    assert empty.encode() == struct.pack("<Ii", 0, 0)
    assert empty.longest == 0
    strings = StringTable()
    strings.refs(["a\udce9"])
    assert strings.encode() == struct.pack("<I2i", 1, 0, 2) + b"a?" + b"\0" * 2
    assert strings.longest == 2


def test_a_map_column_is_offsets_keys_values() -> None:
    strings = StringTable()
    strings.refs(["k"])
    column = _map_column([{"k": "v", 1: 2}, None, {}, {"k": "w"}], strings)
    assert strings.index == {"k": 0, "v": 1, "1": 2, "2": 3, "w": 4}
    offsets = struct.pack("<5i", 0, 2, 2, 2, 3) + b"\0" * 4
    keys = struct.pack("<3I", 0, 2, 0) + b"\0" * 4
    values = struct.pack("<3I", 1, 3, 4) + b"\0" * 4
    assert column == offsets + keys + values


def test_a_map_column_with_no_entries_is_zero_offsets() -> None:
    strings = StringTable()
    assert _map_column([None, {}], strings) == bytes(12) + bytes(4)
    assert _map_column([None], strings) == bytes(8)
    assert strings.index == {}


class Color(enum.IntEnum):
    RED = 1


def test_attributes_are_frozen_as_compact_json() -> None:
    assert Attributes.of(None) is EMPTY_ATTRIBUTES
    assert Attributes.of({}) is EMPTY_ATTRIBUTES
    assert EMPTY_ATTRIBUTES == ""
    frozen = Attributes.of({"route": "/cart", "ok": True, "n": 3, "x": 1.5, 7: "é"})
    assert isinstance(frozen, Attributes)
    assert frozen == '{"route":"/cart","ok":true,"n":3,"x":1.5,"7":"é"}'
    # anything but str, bool, int and float (subclasses included) is recorded as its str
    assert Attributes.of({"c": Color.RED, "l": [1], "u": None}) == (
        '{"c":"1","l":"[1]","u":"None"}'
    )


def test_attributes_texts() -> None:
    assert attributes_texts([None, None]) == ["", ""]
    assert attributes_texts([]) == []
    shared = {"a": 1}
    frozen = Attributes.of({"b": False})
    assert attributes_texts([None, "raw", shared, shared, frozen, {"a": 2}]) == [
        "",
        "raw",
        '{"a":1}',
        '{"a":1}',
        '{"b":false}',
        '{"a":2}',
    ]


def test_a_section_is_its_header_then_each_column_padded() -> None:
    strings = StringTable()
    section = encode_section(
        MEASURE, [[5, 6], ["cpu", "cpu"], ["%", "%"], [1.5, 2.5], [None, {"a": 1}]], strings
    )
    assert section == (
        struct.pack("<HHI", 2, 0, 2)
        + struct.pack("<2q", 5, 6)
        + struct.pack("<2I", 0, 0)
        + struct.pack("<2I", 1, 1)
        + struct.pack("<2d", 1.5, 2.5)
        + struct.pack("<2I", 2, 3)
    )
    assert list(strings.index) == ["cpu", "%", "", '{"a":1}']
    small = EventType(9, "small", (Field("level", "u8"), Field("ok", "bool"), Field("n", "u64")))
    assert encode_section(small, [[3], [True], [2**64 - 1]], StringTable()) == (
        struct.pack("<HHI", 9, 0, 1)
        + b"\x03" + b"\0" * 7
        + b"\x01" + b"\0" * 7
        + struct.pack("<Q", 2**64 - 1)
    )  # fmt: skip
    empty = EventType(10, "empty", ())
    assert encode_section(empty, [], StringTable()) == struct.pack("<HHI", 10, 0, 0)


def test_a_section_refuses_columns_that_do_not_fit_its_type() -> None:
    with pytest.raises(ValueError) as caught:
        encode_section(SPAN_END_V1, [[1]], StringTable())
    assert str(caught.value) == "thread_span_end has 2 fields, got 1 columns"
    with pytest.raises(ValueError) as caught:
        encode_section(SPAN_END_V1, [[1, 2], [3]], StringTable())
    assert str(caught.value) == "thread_span_end.span_id has 1 rows, not 2"


def test_a_block_is_the_header_then_the_payload_compressed_or_not() -> None:
    strings = StringTable()
    sections = [encode_section(SPAN_END_V1, [[4], [9]], strings)]
    payload = strings.encode() + struct.pack("<II", 1, 0) + sections[0]
    for compress in (True, False):
        block = encode_block(
            stream_id=uuid.UUID(int=1),
            sequence=7,
            begin_ticks=2,
            end_ticks=4,
            object_count=1,
            sections=sections,
            strings=strings,
            block_id=uuid.UUID(int=2),
            compress=compress,
        )
        body = lz4.block.compress(payload, store_size=False) if compress else payload
        assert block[HEADER_SIZE:] == body
        header = parse_header(block)
        assert (header.stream_id, header.block_id) == (uuid.UUID(int=1), uuid.UUID(int=2))
        assert (header.sequence, header.begin_ticks, header.end_ticks) == (7, 2, 4)
        assert (header.object_count, header.payload_size) == (1, len(body))
        assert (header.uncompressed_size, header.payload_crc32) == (len(payload), zlib.crc32(body))
        assert header.compression == (1 if compress else 0)


def test_a_block_without_an_id_gets_a_random_one() -> None:
    def block_id() -> uuid.UUID:
        block = encode_block(
            stream_id=uuid.UUID(int=1),
            sequence=0,
            begin_ticks=0,
            end_ticks=0,
            object_count=0,
            sections=[],
            strings=StringTable(),
        )
        return parse_header(block).block_id

    first, second = block_id(), block_id()
    assert first != second and first.version == second.version == 4
