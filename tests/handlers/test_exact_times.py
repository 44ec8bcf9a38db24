"""Issue 10, item 1: conversion computes time exactly as ingest's check does, for every tick
frequency and offset ingest accepts (clocks above 1 GHz, above 2**53 ticks, up to 2**63 - 1)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from blocklake.errors import ClientError
from blocklake.etl import rows
from blocklake.etl.convert import BlockConverter
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types
from blocklake.ingest import validate
from blocklake.ingest.service import _check_times
from blocklake.stores.models import ProcessInfo
from tests.handlers.test_ingest_refusals import Ingest
from tests.helpers import lake_for, stored_rows

INT64 = st.integers(-(2**63), 2**63 - 1)


def exact_ns(process: ProcessInfo, ticks: int) -> int:
    delta = ticks - process.start_ticks
    seconds, remainder = divmod(delta, process.tick_frequency)
    return process.start_time_ns + seconds * 10**9 + remainder * 10**9 // process.tick_frequency


def accepted(process: ProcessInfo, ticks: list[int]) -> bool:
    """Whether ingest's check accepts these ticks on this clock."""
    header = SimpleNamespace(begin_ticks=min(ticks), end_ticks=max(ticks))
    summary = SimpleNamespace(min_ticks=min(ticks), max_ticks=max(ticks))
    try:
        _check_times(header, summary, process)
    except ClientError:
        return False
    return True


def _process(start_time_ns: int, start_ticks: int, frequency: int) -> ProcessInfo:
    return ProcessInfo(str(uuid.uuid4()), "x", "u", "c", start_time_ns, start_ticks, frequency)


@st.composite
def clocks_and_ticks(draw):
    frequency = draw(
        st.one_of(
            st.integers(1, 2**63 - 1),
            st.sampled_from([1, 3, 1000, 10**9, 3 * 10**9, 10**10, 2**53 + 1, 2**62, 2**63 - 1]),
        )
    )
    start_time_ns = draw(st.integers(validate.MIN_TIME_NS, validate.MAX_TIME_NS - 1))
    start_ticks = draw(INT64)
    # An offset in time the check accepts, then the ticks nearest to it, jittered.
    offset_ns = draw(
        st.integers(validate.MIN_TIME_NS - start_time_ns, validate.MAX_TIME_NS - 1 - start_time_ns)
    )
    base = start_ticks + offset_ns * frequency // 10**9
    jitters = draw(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20))
    ticks = [base + jitter for jitter in jitters]
    process = _process(start_time_ns, start_ticks, frequency)
    assume(all(-(2**63) <= tick < 2**63 for tick in ticks))
    assume(accepted(process, ticks))
    return process, ticks


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(clocks_and_ticks())
def test_every_accepted_tick_converts_exactly(case) -> None:
    process, ticks = case
    expected = [exact_ns(process, tick) for tick in ticks]
    assert [process.time_ns(tick) for tick in ticks] == expected
    array = pa.array(ticks, pa.int64())
    assert rows.times_ns(array, process).to_pylist() == expected
    chunked = pa.chunked_array([array[:1], array[1:]])
    assert rows.times_ns(chunked, process).to_pylist() == expected
    micros = rows.times(array, process).cast(pa.int64()).to_pylist()
    assert micros == [ns // 1000 for ns in expected]


CLOCKS = [
    # (tick_frequency, seconds after the process start): the attacker's clocks
    (3_000_000_000, 40 * 86400),
    (10**10, 11 * 86400),
    (2**53 + 1, 1000),
    (2**62, 1),
    (2**63 - 1, 0),
    (3, 86400),
]


@pytest.mark.parametrize("frequency,seconds", CLOCKS)
def test_fast_clocks_convert_every_table(settings, context, frequency: int, seconds: int) -> None:
    ingest = Ingest(settings, context)
    names = [
        "log_entry",
        "measure",
        "thread_span_begin",
        "thread_span_end",
        "async_span_begin",
        "async_span_end",
    ]
    start_ns = 1_780_000_000_000_000_000
    stream = ingest.stream(*names, start_time_ns=start_ns, start_ticks=0, tick_frequency=frequency)
    process = ingest.metadata.get_process(
        "acme", ingest.metadata.get_stream("acme", stream).process_id
    )
    first = seconds * frequency + frequency // 7
    ticks = [first, first + 1, first + frequency // 3 + 2]
    types = event_types(1)
    strings = StringTable()
    span = [ticks[:1], [1], [0], [0], ["s"], ["t"], ["f"], [1]]
    sections = [
        encode_section(
            types["log_entry"], [ticks, [4] * 3, ["t"] * 3, ["m"] * 3, [None] * 3], strings
        ),
        encode_section(types["measure"], [ticks, ["n"] * 3, ["u"] * 3, [1.0] * 3], strings),
        encode_section(types["thread_span_begin"], span, strings),
        encode_section(types["thread_span_end"], [ticks[2:], [1]], strings),
        encode_section(types["async_span_begin"], span, strings),
        encode_section(types["async_span_end"], [ticks[2:], [1]], strings),
    ]
    block = encode_block(
        stream_id=uuid.UUID(stream),
        sequence=0,
        begin_ticks=ticks[0],
        end_ticks=ticks[-1],
        object_count=6,
        sections=sections,
        strings=strings,
    )
    status, answer = ingest.call("/v1/blocks", block)
    assert status == 201, answer
    (key,) = ingest.blobs.list("raw/")
    BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs)).convert_key(key)
    micros = [exact_ns(process, tick) // 1000 for tick in ticks]

    def column(table: str, name: str) -> list[int]:
        values = stored_rows(ingest.blobs, table)[name]
        return values.cast(pa.int64()).to_pylist()

    assert column("log_entries", "time") == micros
    assert column("measures", "time") == micros
    for table in ("thread_spans", "async_spans"):
        assert column(table, "begin") == micros[:1]
        assert column(table, "end") == micros[2:]
        expected = exact_ns(process, ticks[2]) - exact_ns(process, ticks[0])
        assert column(table, "duration_ns") == [expected]
    assert column("blocks", "begin_time") == micros[:1]
    assert column("blocks", "end_time") == micros[2:]
