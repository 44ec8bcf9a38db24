"""``check_block`` on blocks a writer makes: maps of several keys past the first row, and span
ends of each span type checked on their own (issue 16: mutation testing found these
unasserted)."""

from __future__ import annotations

import struct
import uuid

import pytest

from blocklake.format.check import check_block, check_payload
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import FormatError
from blocklake.format.schema import event_types
from tests.format.test_malformed import log_section, payload

TYPES = event_types()
LAYOUT = {t.id: t for t in TYPES.values()}


def block(*sections: tuple[str, list[list]]) -> bytes:
    strings = StringTable()
    encoded = [encode_section(TYPES[name], columns, strings) for name, columns in sections]
    return encode_block(
        stream_id=uuid.UUID(int=1),
        sequence=0,
        begin_ticks=0,
        end_ticks=100,
        object_count=sum(len(columns[0]) for _, columns in sections),
        sections=encoded,
        strings=strings,
        block_id=uuid.UUID(int=2),
    )


def logs(properties: list[dict | None]) -> tuple[str, list[list]]:
    n = len(properties)
    columns = [list(range(n)), [4] * n, ["t"] * n, ["m"] * n, properties]
    columns += [[1] * n, ["main"] * n, [0] * n, [0] * n, [""] * n]
    return "log_entry", columns


def span_begins(kind: str, ids: list[int], ticks: list[int]) -> tuple[str, list[list]]:
    n = len(ids)
    columns = [ticks, ids, [0] * n, [0] * n, ["s"] * n, ["t"] * n, ["f"] * n, [1] * n]
    columns += [[""] * n, [0] * n, [0] * n, [None] * n]
    return f"{kind}_span_begin", columns


def span_ends(kind: str, ids: list[int], ticks: list[int]) -> tuple[str, list[list]]:
    n = len(ids)
    return f"{kind}_span_end", [ticks, ids, [0] * n, [""] * n, [""] * n]


def refused(data: bytes) -> str:
    with pytest.raises(FormatError) as caught:
        check_block(data, LAYOUT)
    return str(caught.value)


def test_maps_of_several_distinct_keys_in_any_row_are_accepted() -> None:
    data = block(logs([{"a": "1"}, {"b": "2", "c": "3"}, None, {"a": "x", "b": "y", "d": "z"}]))
    assert check_block(data, LAYOUT)[2].max_ticks == 3


def test_span_ends_of_each_type_need_their_begin() -> None:
    # no thread span end at all: the async ends are still checked
    orphan = block(span_ends("async", [7], [5]))
    assert refused(orphan) == (
        "async_span_end.span_id 7 has no async_span_begin in the block (the begins of spans "
        "open at the block's start are replayed in it)"
    )
    paired = block(span_begins("async", [7], [3]), span_ends("async", [7], [5]))
    assert check_block(paired, LAYOUT)[2].max_ticks == 5
    early = block(span_begins("async", [7], [6]), span_ends("async", [7], [5]))
    assert refused(early) == "async_span_end.ticks 5 of span 7 is before its begin (6)"
    thread = block(
        span_begins("thread", [1], [2]),
        span_ends("thread", [1], [2]),
        span_ends("async", [8], [9]),
    )
    assert refused(thread).startswith("async_span_end.span_id 8 has no async_span_begin")


def test_a_string_table_past_the_end_or_badly_padded_is_refused_by_name() -> None:
    layout = {t.id: t for t in event_types(1).values()}
    past = struct.pack("<I2i", 1, 0, 100) + b"a"
    with pytest.raises(FormatError) as caught:
        check_payload(past, layout, 0)
    assert str(caught.value) == "payload ends inside string table bytes (offset 12, 100 bytes)"
    padded = struct.pack("<I2i", 1, 0, 1) + b"a\x01" + bytes(6) + struct.pack("<II", 0, 0)
    with pytest.raises(FormatError) as caught:
        check_payload(padded, layout, 0)
    assert str(caught.value) == "padding after string table bytes (offset 13) is not zero bytes"


def test_a_map_reference_outside_the_table_is_refused_without_the_complete_check() -> None:
    layout = {t.id: t for t in event_types(1).values()}
    data = payload(log_section([0, 1], [5], [0]))
    with pytest.raises(FormatError) as caught:
        check_payload(data, layout, 1, complete=False)
    assert str(caught.value) == "log_entry.properties keys refers outside the string table"


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "payload ends inside string table count (offset 0, 4 bytes)"),
        (struct.pack("<Ii", 5, 0), "payload ends inside string table offsets (offset 4, 24 bytes)"),
        # a negative offset is a decrease, not a huge unsigned size
        (struct.pack("<I2i", 1, 0, -1), "string table offsets must start at 0 and never decrease"),
        (struct.pack("<I2i", 1, 3, 3), "string table offsets must start at 0 and never decrease"),
        # a byte that starts no UTF-8 character: caught by decoding, not by the split check
        (
            struct.pack("<I2i", 1, 0, 1) + b"\xff" + bytes(3) + struct.pack("<II", 0, 0),
            "string table is not valid UTF-8: invalid start byte",
        ),
    ],
)
def test_a_payload_cut_short_names_the_part_it_ends_in(data: bytes, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        check_payload(data, {t.id: t for t in event_types(1).values()}, 0)
    assert str(caught.value) == message
