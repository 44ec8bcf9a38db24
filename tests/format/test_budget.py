"""Decoding within a budget (issue 10, item 3): declared counts bound the rows, text is bounded
per block, the payload is consumed exactly, span ids cannot multiply rows."""

from __future__ import annotations

import struct
import tracemalloc
import uuid

import pytest

from blocklake.format.arrow import decode_block
from blocklake.format.check import Budget, check_block
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import FormatError
from tests import hostile
from tests.format.test_malformed import log_section, measure_section, payload, strings_of, wrap

KNOWN = hostile.KNOWN
LAYOUT = {KNOWN[name].id: KNOWN[name] for name in hostile.LAYOUT_NAMES}
ALL = {t.id: t for t in KNOWN.values()}
STREAM = str(uuid.UUID(int=7))
REASONS = {
    "span bomb": "repeats an id",
    "long string spans": "uncompressed_size",
    "map bomb": "uncompressed_size",
    "long incompressible string spans": "expand",
    "incompressible map bomb": "map entries",
    "trailing zeros": "after its last section",
    "1 GiB announced": "uncompressed_size",
}


@pytest.mark.parametrize("name", list(hostile.AMPLIFIERS))
def test_each_amplifier_is_refused_before_it_costs_memory(name: str) -> None:
    data = hostile.AMPLIFIERS[name](STREAM)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=REASONS[name]):
            decode_block(data, LAYOUT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The payload at most (1 MiB here), once, plus its columns: never the expansion.
    assert peak < 3 * 1024 * 1024 + 4 * len(data), f"{name}: peak {peak} bytes"


def test_declared_object_count_bounds_the_rows() -> None:
    data = bytearray(wrap(payload(measure_section(2))))
    struct.pack_into("<I", data, 12, 1)  # object_count: 1 event, the payload holds 2
    with pytest.raises(FormatError, match="object_count"):
        check_block(bytes(data), ALL)


def test_span_ends_and_replayed_begins_are_not_counted() -> None:
    # one replayed begin and one end, object_count 1: what the SDK writes for a span closed here
    strings = StringTable()
    begin, end = KNOWN["thread_span_begin"], KNOWN["thread_span_end"]
    sections = [
        encode_section(begin, [[1], [5], [0], [0], ["s"], ["t"], ["f"], [1]], strings),
        encode_section(end, [[2], [5]], strings),
    ]
    block = encode_block(
        stream_id=uuid.UUID(STREAM),
        sequence=0,
        begin_ticks=2,
        end_ticks=2,
        object_count=1,
        sections=sections,
        strings=strings,
    )
    assert decode_block(block, ALL).summary.rows == {"thread_span_begin": 1, "thread_span_end": 1}


def test_ends_with_repeated_ids_are_refused() -> None:
    strings = StringTable()
    end = KNOWN["thread_span_end"]
    section = encode_section(end, [[1, 2], [9, 9]], strings)
    with pytest.raises(FormatError, match=r"thread_span_end\.span_id"):
        check_block(wrap(strings.encode() + struct.pack("<II", 1, 0) + section), ALL)


def test_the_payload_is_consumed_exactly() -> None:
    body = payload(measure_section(1))
    assert check_block(wrap(body), ALL)[2].rows == {"measure": 1}
    for extra in (b"\0" * 8, b"\1" * 8, b"\0" * 4096):
        with pytest.raises(FormatError, match="after its last section"):
            check_block(wrap(body + extra), ALL)


def test_a_string_table_that_splits_a_character_is_refused() -> None:
    table = struct.pack("<I3i", 2, 0, 1, 2) + "é".encode() + bytes(2)  # é cut in two strings
    with pytest.raises(FormatError, match="UTF-8"):
        check_block(wrap(payload(strings=table)), ALL)


def test_expanded_text_is_bounded_per_block() -> None:
    body = payload(log_section([0, 3], [0, 0, 0], [1, 1, 1]), strings=strings_of("a", "b" * 100))
    budget = Budget(max_expanded_bytes=200)
    with pytest.raises(FormatError, match="expand"):
        check_block(wrap(body), ALL, budget)
    # (the map repeats its key: only the check of each reference, skipped here, refuses that)
    budget = Budget(max_expanded_bytes=400)
    assert check_block(wrap(body), ALL, budget, complete=False)[2].expanded_bytes > 300


def test_map_text_is_bounded_on_its_own() -> None:
    body = payload(log_section([0, 3], [0, 0, 0], [1, 1, 1]), strings=strings_of("a", "b" * 100))
    with pytest.raises(FormatError, match="map entries"):
        check_block(wrap(body), ALL, Budget(max_map_bytes=200))
    budget = Budget(max_map_bytes=400)
    assert check_block(wrap(body), ALL, budget, complete=False)[2].map_bytes == 303


def test_the_compression_ratio_is_bounded_above_the_floor() -> None:
    body = payload(measure_section(1))
    big = payload(measure_section(1), strings=strings_of("z" * 100_000))
    budget = Budget(ratio_floor_bytes=1024, max_ratio=4)
    assert check_block(wrap(body), ALL, budget)
    with pytest.raises(FormatError, match="uncompressed_size"):
        check_block(wrap(big), ALL, budget)
    with pytest.raises(FormatError, match="over the"):
        check_block(wrap(big, compress=False), ALL, Budget(max_payload_bytes=1000))


@pytest.mark.parametrize("field,value", [("span_id", 2**63), ("depth", 2**31), ("line", 2**32 - 1)])
def test_span_fields_the_lake_cannot_hold_are_refused(field: str, value: int) -> None:
    """Found by the fuzzer: a span id of 2**64 - 2**56 passed ingest, then failed the cast to
    the lake's signed column in conversion."""
    begin = KNOWN["thread_span_begin"]
    row = {"ticks": 1, "span_id": 1, "parent_span_id": 0, "depth": 0, "line": 1}
    row[field] = value
    strings = StringTable()
    columns = [[row.get(f.name, "s")] for f in begin.fields]
    section = encode_section(begin, columns, strings)
    with pytest.raises(FormatError, match=f"{field} holds {value}"):
        check_block(wrap(strings.encode() + struct.pack("<II", 1, 0) + section), ALL)


@pytest.mark.parametrize(
    "body",
    [
        payload(measure_section(2, name_ref=2)),
        payload(measure_section(1, unit_ref=2**32 - 1)),
        payload(log_section([0, 1], [2], [0])),
    ],
    ids=["str ref", "max u32 ref", "map key ref"],
)
def test_ingest_checks_every_reference_without_arrow(body: bytes) -> None:
    # complete: what ingest runs, without pyarrow to check references for it
    with pytest.raises(FormatError, match="outside the string table"):
        check_block(wrap(body), ALL)
    with pytest.raises(FormatError):  # and the decoder, which leaves them to Arrow
        decode_block(wrap(body), ALL)
