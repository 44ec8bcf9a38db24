"""``IngestService`` without HTTP: what each use case stores, field by field, and each refusal's
exact status, code and message (issue 16: mutation testing found these unasserted)."""

from __future__ import annotations

import uuid

import pytest

from blocklake.errors import ClientError
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import SchemaError, event_types, layout_from_json, layout_to_json
from blocklake.ingest import validate
from blocklake.ingest.service import MAX_BLOCK_SPAN_NS, IngestService, StoredBlock
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.models import BlockInfo, ProcessInfo, StreamInfo
from blocklake.stores.sql import SqliteExecutor
from tests.helpers import process_document, stream_document

START_NS = 1_779_998_400_000_000_000  # 2026-05-28T20:00:00Z
INT64_MAX = 2**63 - 1


@pytest.fixture
def service(tmp_path) -> IngestService:
    metadata = SqlMetadataStore(SqliteExecutor(":memory:"))
    metadata.migrate()
    return IngestService(LocalBlobStore(tmp_path), metadata, 1 << 20)


def refusal(call, *args) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call(*args)
    return caught.value.status, caught.value.code, caught.value.message


def stream_of(service: IngestService, **process: object) -> tuple[str, str]:
    document = process_document(
        **{"start_time_ns": START_NS, "start_ticks": 0, "tick_frequency": 10**9, **process}
    )
    assert service.register_process("acme", document) is True
    stream = stream_document(document["process_id"])
    assert service.register_stream("acme", stream) is True
    return document["process_id"], stream["stream_id"]


def block(stream: str, ticks: list[int], begin: int, end: int, block_id: int = 9) -> bytes:
    strings = StringTable()
    n = len(ticks)
    columns = [ticks, [4] * n, ["t"] * n, ["m"] * n, [None] * n]
    sections = [encode_section(event_types(1)["log_entry"], columns, strings)] if n else []
    return encode_block(
        stream_id=uuid.UUID(stream),
        sequence=5,
        begin_ticks=begin,
        end_ticks=end,
        object_count=n,
        sections=sections,
        strings=strings,
        block_id=uuid.UUID(int=block_id),
    )


def test_a_process_is_stored_as_sent_with_its_parent_and_properties(service) -> None:
    parent = str(uuid.uuid4())
    document = process_document(
        parent_process_id=parent.upper(), tick_frequency=1, properties={"k": "v"}
    )
    assert service.register_process("acme", document) is True
    assert service.register_process("acme", document) is False
    assert service.metadata.get_process("acme", document["process_id"]) == ProcessInfo(
        process_id=document["process_id"],
        exe="/usr/bin/game",
        username="tester",
        computer="box",
        start_time_ns=document["start_time_ns"],
        start_ticks=1_000,
        tick_frequency=1,
        parent_process_id=parent,
        properties={"k": "v"},
    )


def test_process_fields_are_each_checked_under_their_name(service) -> None:
    for change, message in (
        ({"tick_frequency": 0}, f"field 'tick_frequency': 0 is outside 1..{INT64_MAX}"),
        ({"parent_process_id": "nope"}, "field 'parent_process_id': 'nope' is not a UUID"),
        ({"properties": {"k": 1}}, "field 'properties': expected an object of strings"),
    ):
        document = process_document(**change)
        assert refusal(service.register_process, "acme", document) == (
            400,
            "invalid_field",
            message,
        )


def test_a_conflicting_registration_is_a_409_saying_which_id(service) -> None:
    document = process_document()
    service.register_process("acme", document)
    changed = {**document, "exe": "/bin/other"}
    assert refusal(service.register_process, "acme", changed) == (
        409,
        "conflict",
        f"process_id {document['process_id']} is already registered with other values",
    )


def test_a_stream_is_stored_with_its_tags_layout_and_properties(service) -> None:
    process = process_document()
    service.register_process("acme", process)
    stream = stream_document(process["process_id"], tags=["a", "b"], properties={"k": "v"})
    assert service.register_stream("acme", stream) is True
    assert service.metadata.get_stream("acme", stream["stream_id"]) == StreamInfo(
        stream_id=stream["stream_id"],
        process_id=process["process_id"],
        tags=("a", "b"),
        layout=layout_from_json(stream["layout"]),
        properties={"k": "v"},
    )
    bad = stream_document(process["process_id"], properties={"k": "\0"})
    assert refusal(service.register_stream, "acme", bad) == (
        400,
        "invalid_field",
        "field 'properties.k': contains a NUL character",
    )


def test_a_stream_of_an_unknown_process_or_with_a_bad_layout_is_refused(service) -> None:
    unknown = str(uuid.uuid4())
    assert refusal(service.register_stream, "acme", stream_document(unknown)) == (
        404,
        "unknown_process",
        f"process {unknown} is not registered",
    )
    layout = layout_to_json([event_types(1)["log_entry"]])
    layout[0]["id"] = 0
    with pytest.raises(SchemaError) as caught:
        layout_from_json(layout)
    assert refusal(service.register_stream, "acme", stream_document(unknown, layout=layout)) == (
        400,
        "invalid_layout",
        f"field 'layout': {caught.value}",
    )


def test_a_block_is_stored_under_its_key_and_described_exactly(service) -> None:
    process_id, stream = stream_of(service)
    data = block(stream, [10, 20], 10, 30)
    key = raw_key("acme", START_NS + 10, stream, str(uuid.UUID(int=9)))
    expected = BlockInfo(
        block_id=str(uuid.UUID(int=9)),
        stream_id=stream,
        process_id=process_id,
        sequence=5,
        begin_ticks=10,
        end_ticks=30,
        begin_time_ns=START_NS + 10,
        end_time_ns=START_NS + 30,
        object_count=2,
        payload_size=len(data) - 88,
        object_key=key,
    )
    assert service.validated_block("acme", data) == expected
    assert list(service.blobs.list("raw/")) == []
    stored = service.store_block("acme", data)
    assert stored == StoredBlock(str(uuid.UUID(int=9)), key, duplicate=False)
    assert service.blobs.get(key) == data
    assert service.metadata.get_block("acme", expected.block_id) == expected
    assert service.store_block("acme", data) == StoredBlock(expected.block_id, key, duplicate=True)


def test_a_block_of_exactly_the_limit_is_accepted(service) -> None:
    _, stream = stream_of(service)
    data = block(stream, [1], 1, 1)
    service.max_block_bytes = len(data)
    assert service.store_block("acme", data).duplicate is False
    service.max_block_bytes = len(data) - 1
    assert refusal(service.store_block, "acme", block(stream, [1], 1, 1, block_id=10)) == (
        413,
        "block_too_large",
        f"block is {len(data)} bytes; the limit is {len(data) - 1}",
    )


def test_an_empty_block_is_accepted(service) -> None:
    _, stream = stream_of(service)
    assert service.store_block("acme", block(stream, [], 0, MAX_BLOCK_SPAN_NS)).duplicate is False


def test_a_block_that_cannot_be_read_is_refused_by_name(service) -> None:
    _, stream = stream_of(service)
    assert refusal(service.store_block, "acme", b"BLK") == (
        400,
        "invalid_block",
        "block is 3 bytes, shorter than the 88-byte header",
    )
    data = bytearray(block(stream, [1], 1, 1))
    data[-1] ^= 0xFF
    status, code, _ = refusal(service.store_block, "acme", bytes(data))
    assert (status, code) == (400, "invalid_block")
    other = str(uuid.uuid4())
    assert refusal(service.store_block, "acme", block(other, [1], 1, 1)) == (
        404,
        "unknown_stream",
        f"stream {other} is not registered; POST /v1/streams first",
    )


def test_a_stream_registered_with_a_layout_now_refused_is_a_409(service, monkeypatch) -> None:
    _, stream = stream_of(service)

    def broken(tenant: str, stream_id: str):
        raise SchemaError("type 0 is reserved")

    monkeypatch.setattr(service.metadata, "get_stream", broken)
    assert refusal(service.store_block, "acme", block(stream, [1], 1, 1)) == (
        409,
        "invalid_layout",
        f"stream {stream}: type 0 is reserved",
    )


def test_events_outside_the_header_range_are_refused_with_their_ticks(service) -> None:
    _, stream = stream_of(service)
    assert refusal(service.store_block, "acme", block(stream, [5, 12], 5, 11)) == (
        400,
        "invalid_field",
        "field 'end_ticks': 11 is before an event of the block (ticks 12): "
        "events must lie within begin_ticks..end_ticks",
    )
    assert refusal(service.store_block, "acme", block(stream, [4, 8], 5, 11)) == (
        400,
        "invalid_field",
        "field 'begin_ticks': 5 is after an event of the block (ticks 4): events must lie "
        "within begin_ticks..end_ticks (only replayed span begins may be older)",
    )
    over = MAX_BLOCK_SPAN_NS + 1
    assert refusal(service.store_block, "acme", block(stream, [0], 0, over)) == (
        400,
        "invalid_field",
        f"field 'end_ticks': the block covers {over} ns from begin_ticks to end_ticks, over one "
        f"hour ({MAX_BLOCK_SPAN_NS} ns): cut it into shorter blocks",
    )
    # the edges: events on begin_ticks and end_ticks, exactly an hour
    edges = block(stream, [0, MAX_BLOCK_SPAN_NS], 0, MAX_BLOCK_SPAN_NS)
    assert service.store_block("acme", edges).duplicate is False


def test_an_hour_is_measured_on_the_process_clock(service) -> None:
    _, stream = stream_of(service, tick_frequency=1_000)  # a tick is a microsecond
    hour = 3_600_000
    assert service.store_block("acme", block(stream, [0, hour], 0, hour)).duplicate is False
    status, _, message = refusal(service.store_block, "acme", block(stream, [0], 0, hour + 1, 11))
    assert status == 400 and message.startswith(
        f"field 'end_ticks': the block covers {MAX_BLOCK_SPAN_NS + 1_000_000} ns"
    )


def test_ticks_are_within_1970_and_2200_on_the_process_clock(service) -> None:
    # start_time_ns 0 at tick 5: tick 5 is 1970-01-01, tick 4 a nanosecond before
    _, stream = stream_of(service, start_time_ns=0, start_ticks=5)
    assert service.store_block("acme", block(stream, [5], 5, 5)).duplicate is False
    assert refusal(service.store_block, "acme", block(stream, [5], 4, 5, 11)) == (
        400,
        "invalid_block",
        "begin_ticks 4 is -1 ns on the process clock: not between 1970 and 2200",
    )
    last = validate.MAX_TIME_NS - 1
    _, late = stream_of(service, start_time_ns=last - 10, start_ticks=0)
    assert service.store_block("acme", block(late, [10], 10, 10, 15)).duplicate is False
    assert refusal(service.store_block, "acme", block(late, [10], 10, 11, 12)) == (
        400,
        "invalid_block",
        f"end_ticks 11 is {validate.MAX_TIME_NS} ns on the process clock: not between 1970 "
        "and 2200",
    )
    assert refusal(service.store_block, "acme", block(late, [10, 11], 10, 10, 13)) == (
        400,
        "invalid_block",
        f"ticks of an event 11 is {validate.MAX_TIME_NS} ns on the process clock: not between "
        "1970 and 2200",
    )
    assert refusal(service.store_block, "acme", block(stream, [4], 5, 5, 14)) == (
        400,
        "invalid_block",
        "ticks of an event 4 is -1 ns on the process clock: not between 1970 and 2200",
    )


def test_ticks_too_far_from_the_clock_start_for_int64_arithmetic_are_refused(service) -> None:
    # a clock so fast that the whole int64 range is two nanoseconds: every moment is in range,
    # but ticks minus start_ticks overflows an int64
    _, stream = stream_of(
        service, start_time_ns=START_NS, start_ticks=-(2**63), tick_frequency=INT64_MAX
    )
    # tick -1 is INT64_MAX ticks (a second) from the start; tick 0 one tick too far
    assert service.store_block("acme", block(stream, [-1], -1, -1)).duplicate is False
    assert refusal(service.store_block, "acme", block(stream, [-1], -1, 0, 11)) == (
        400,
        "invalid_block",
        f"end_ticks 0 is {START_NS + 10**9} ns on the process clock: not between 1970 and 2200",
    )
    # the other end: ticks exactly INT64_MIN from the start
    _, low = stream_of(
        service, start_time_ns=START_NS, start_ticks=INT64_MAX, tick_frequency=INT64_MAX
    )
    assert service.store_block("acme", block(low, [-1], -1, -1, 15)).duplicate is False


def test_a_block_of_a_stream_whose_process_is_gone_is_a_404(service, monkeypatch) -> None:
    process_id, stream = stream_of(service)
    monkeypatch.setattr(service.metadata, "get_process", lambda tenant, process_id: None)
    assert refusal(service.store_block, "acme", block(stream, [1], 1, 1)) == (
        404,
        "unknown_process",
        f"process {process_id} is not registered",
    )
