"""Issue 10, items 1-5: everything ingest cannot store or convert is refused with a 4xx JSON
answer naming what is wrong, and nothing refused is stored."""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from datetime import UTC, datetime

import pytest

from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter
from blocklake.format.schema import event_types, layout_to_json
from blocklake.ingest import validate
from blocklake.ingest.service import IngestService
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqliteExecutor
from lambdas.ingest.handler import make_handler
from tests import hostile
from tests.helpers import (
    http_event,
    lake_for,
    log_block,
    process_document,
    stored_rows,
    stream_document,
)

MAX_BLOCK = 4 * 1024 * 1024


class Ingest:
    def __init__(self, settings: Settings, context: object) -> None:
        self.blobs = LocalBlobStore(settings.data_dir)
        self.metadata = SqlMetadataStore(SqliteExecutor(settings.sqlite_path))
        self.metadata.migrate()
        self.handle = make_handler(IngestService(self.blobs, self.metadata, MAX_BLOCK))
        self.context = context

    def call(self, path: str, body: bytes | dict) -> tuple[int, dict]:
        response = self.handle(http_event(path, body), self.context)
        assert response["headers"]["Content-Type"] == "application/json"
        return response["statusCode"], json.loads(response["body"])

    def stream(self, *names: str, **process: object) -> str:
        document = process_document(**process)
        assert self.call("/v1/processes", document)[0] == 201
        stream = stream_document(document["process_id"], *names)
        assert self.call("/v1/streams", stream)[0] == 201
        return stream["stream_id"]

    def stored(self) -> tuple[list[str], int]:
        rows = self.metadata.executor.query("SELECT count(*) AS n FROM blocks")
        return list(self.blobs.list("raw/")), rows[0]["n"]


@pytest.fixture
def ingest(settings: Settings, context: object) -> Ingest:
    return Ingest(settings, context)


def refused(ingest: Ingest, path: str, body: bytes | dict, status: int, *words: str) -> None:
    got, document = ingest.call(path, body)
    assert got == status, document
    for word in words:
        assert word in document["error"]["message"], document
    assert ingest.stored() == ([], 0)


@pytest.mark.parametrize(
    "change,field",
    [
        ({"exe": "\udce9"}, "exe"),  # a lone surrogate: not UTF-8
        ({"username": "a\0b"}, "username"),  # PostgreSQL TEXT holds no NUL
        ({"computer": "x" * 5000}, "computer"),
        ({"start_time_ns": 2**63}, "start_time_ns"),
        ({"start_time_ns": -1}, "start_time_ns"),
        ({"start_ticks": -(2**63) - 1}, "start_ticks"),
        ({"tick_frequency": 2**64}, "tick_frequency"),
        ({"tick_frequency": 0}, "tick_frequency"),
        ({"properties": {"k": "\udce9"}}, "properties"),
        ({"properties": {f"k{i}": "v" for i in range(300)}}, "properties"),
        ({"parent_process_id": "not-a-uuid"}, "parent_process_id"),
    ],
    # printable ids: mutmut (issue 16) cannot select a test by an id holding escapes
    ids=lambda value: re.sub(r"[^\w ':{},-]", "?", str(value))[:30],
)
def test_process_values_that_cannot_be_stored(ingest: Ingest, change: dict, field: str) -> None:
    document = process_document(**change)
    status, answer = ingest.call("/v1/processes", document)
    assert (status, answer["error"]["code"]) == (400, "invalid_field")
    assert f"field '{field}" in answer["error"]["message"]
    assert ingest.metadata.get_process("acme", document["process_id"]) is None


def test_stream_tags_and_properties_are_checked(ingest: Ingest) -> None:
    process = process_document()
    ingest.call("/v1/processes", process)
    for change, field in (({"tags": ["\udce9"]}, "tags"), ({"properties": {"\0": "v"}}, "key")):
        stream = stream_document(process["process_id"], **change)
        status, answer = ingest.call("/v1/streams", stream)
        assert status == 400 and field in answer["error"]["message"]


def patched(block: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(block)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    "offset,fmt,value,field",
    [(48, "<Q", 2**64 - 1, "sequence"), (9, "B", 1, "flags"), (10, "<H", 7, "reserved")],
)
def test_header_fields_that_cannot_be_stored(ingest, offset, fmt, value, field) -> None:
    block = patched(log_block(ingest.stream(), ["x"]), offset, fmt, value)
    refused(ingest, "/v1/blocks", block, 400, field)


def _ticks_in_year(year: int, start_ns: int) -> int:
    """Ticks of a millisecond clock (started at ``start_ns``, tick 1000) in ``year``."""
    moment = (year - 1970) * 31_556_952 * 1000  # milliseconds since 1970, Gregorian years
    return 1_000 + moment - start_ns // 1_000_000


@pytest.mark.parametrize("year", [33715, -1142])
def test_block_ticks_in_absurd_years(ingest: Ingest, year: int) -> None:
    start = time.time_ns()
    stream = ingest.stream(start_time_ns=start, tick_frequency=1000)
    first = _ticks_in_year(year, start)
    refused(ingest, "/v1/blocks", log_block(stream, ["x"], first_tick=first), 400, "begin_ticks")


def test_an_event_tick_outside_the_years_is_refused_too(ingest: Ingest) -> None:
    start = time.time_ns()
    stream = ingest.stream(start_time_ns=start, tick_frequency=1000)
    block = bytearray(log_block(stream, ["x", "y"], first_tick=_ticks_in_year(33715, start)))
    struct.pack_into("<qq", block, 56, 5_000, 5_001)  # the header's ticks are sane
    refused(ingest, "/v1/blocks", bytes(block), 400, "ticks of an event")


def test_corrupt_payload_with_a_new_id(ingest: Ingest) -> None:
    stream = ingest.stream()
    refused(ingest, "/v1/blocks", hostile.corrupt_crc(log_block(stream, ["x"])), 400, "crc32")
    block = hostile.zero_uncompressed_size(log_block(stream, ["x"]))
    refused(ingest, "/v1/blocks", block, 400, "uncompressed_size")


@pytest.mark.parametrize("name", list(hostile.AMPLIFIERS))
def test_amplifying_blocks_are_refused(ingest: Ingest, name: str) -> None:
    stream = ingest.stream(*hostile.LAYOUT_NAMES)
    started = time.perf_counter()
    got, document = ingest.call("/v1/blocks", hostile.AMPLIFIERS[name](stream))
    assert (got, document["error"]["code"]) == (400, "invalid_block"), document
    assert time.perf_counter() - started < 2.0
    assert ingest.stored() == ([], 0)


def test_a_known_block_id_on_another_stream_stores_nothing(
    ingest: Ingest, settings: Settings
) -> None:
    first, second = ingest.stream(), ingest.stream()
    block_id = uuid.uuid4()
    accepted = bytearray(log_block(first, ["accepted"]))
    conflicting = bytearray(log_block(second, ["conflicting"]))
    for block in (accepted, conflicting):
        struct.pack_into("<16s", block, 32, block_id.bytes)
    assert ingest.call("/v1/blocks", bytes(accepted))[0] == 201
    status, answer = ingest.call("/v1/blocks", bytes(conflicting))
    assert (status, answer["error"]["code"]) == (409, "conflict")
    (key,) = ingest.blobs.list("raw/")
    assert first in key  # the refused body was not stored
    BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs)).convert_key(key)
    assert stored_rows(ingest.blobs, "log_entries")["message"].to_pylist() == ["accepted"]


def _layout(types: int, fields: int) -> list[dict]:
    field_list = [{"name": f"f{i}", "type": "i64"} for i in range(fields)]
    return [{"id": 1000 + i, "name": f"t{i}", "fields": field_list} for i in range(types)]


@pytest.mark.parametrize(
    "layout,words",
    [
        (_layout(10_000, 1), ["10000 event types"]),
        (_layout(1, 100_000), ["100000 fields"]),
        (
            [{"id": 1, "name": "log_entry", "fields": [{"name": "ticks", "type": "i64"}]}],
            ["log_entry", "built-in"],
        ),
        ([{**layout_to_json([event_types(1)["measure"]])[0], "id": 1001}], ["measure", "built in"]),
        (
            [
                {
                    "id": 1,
                    "name": "log_entry",
                    "fields": [
                        *layout_to_json([event_types(1)["log_entry"]])[0]["fields"],
                        {"name": "span_id", "type": "str"},
                    ],
                }
            ],
            ["span_id", "'u64'", "'str'"],
        ),
        ([{"id": 1000, "name": "bad name", "fields": [{"name": "a", "type": "u8"}]}], ["name"]),
    ],
    ids=[
        "10k types",
        "100k fields",
        "log_entry redefined",
        "measure renumbered",
        "a known field retyped",
        "name",
    ],
)
def test_layouts_that_would_break_conversion(ingest: Ingest, layout, words) -> None:
    process = process_document()
    ingest.call("/v1/processes", process)
    started = time.perf_counter()
    status, answer = ingest.call(
        "/v1/streams", stream_document(process["process_id"]) | {"layout": layout}
    )
    assert time.perf_counter() - started < 1.0  # checks linear in the layout's size
    assert (status, answer["error"]["code"]) == (400, "invalid_layout")
    for word in words:
        assert word in answer["error"]["message"]


def test_answers_tell_the_sdk_the_largest_block(ingest: Ingest) -> None:
    block = log_block(ingest.stream(), ["x"])
    status, answer = ingest.call("/v1/blocks", block)
    assert status == 201 and answer["limits"] == {"max_block_bytes": MAX_BLOCK}
    status, answer = ingest.call("/v1/blocks", block)
    assert status == 200 and answer["limits"] == {"max_block_bytes": MAX_BLOCK}
    status, answer = ingest.call("/v1/blocks", b"\0" * (MAX_BLOCK + 1))
    assert status == 413 and answer["limits"] == {"max_block_bytes": MAX_BLOCK}


def test_a_raw_write_that_fails_after_the_metadata_row_is_completed_by_the_retry(
    ingest: Ingest, monkeypatch
) -> None:
    block = log_block(ingest.stream(), ["retried"])
    original = ingest.blobs.put_if_absent

    def fail_once(*args: object) -> bool:
        monkeypatch.setattr(ingest.blobs, "put_if_absent", original)
        raise OSError("disk full")

    monkeypatch.setattr(ingest.blobs, "put_if_absent", fail_once)
    status, answer = ingest.call("/v1/blocks", block)
    assert (status, answer["error"]["code"]) == (500, "internal_error")
    status, answer = ingest.call("/v1/blocks", block)
    assert (status, answer["status"]) == (201, "stored")  # the object was missing: stored now
    assert len(ingest.stored()[0]) == 1


def test_time_bounds_are_1970_and_2200_utc() -> None:
    assert datetime.fromtimestamp(validate.MIN_TIME_NS / 1e9, UTC).year == 1970
    assert datetime.fromtimestamp(validate.MAX_TIME_NS / 1e9, UTC).year == 2200


def _user_type(*fields: tuple[str, str], name: str = "shift") -> list[dict]:
    return [{"id": 1000, "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}]


TICKS = ("ticks", "i64")


@pytest.mark.parametrize(
    "layout,words",
    [
        (_user_type(TICKS, ("time", "i64")), ["'time'", "reserved"]),
        (_user_type(TICKS, ("process_id", "str")), ["'process_id'", "reserved"]),
        (_user_type(TICKS, ("stream_id", "str")), ["'stream_id'", "reserved"]),
        (_user_type(TICKS, ("block_id", "str")), ["'block_id'", "reserved"]),
        (_user_type(TICKS, ("date", "str")), ["'date'", "reserved"]),
        (_user_type(TICKS, ("hour", "i64")), ["'hour'", "reserved"]),
        (_user_type(TICKS, ("tenant", "str")), ["'tenant'", "reserved"]),
        (_user_type(TICKS, ("Time", "i64")), ["'Time'", "reserved"]),
        (_user_type(("amount", "f64")), ["'ticks'", "first field"]),
        (_user_type(("ticks", "str")), ["'ticks'", "'i64'", "'str'"]),
        (_user_type(TICKS, ("ticks2", "i64"), ("TICKS", "i64")), ["'TICKS'", "reserved"]),
        (_user_type(TICKS, ("trace_id", "i64")), ["'trace_id'", "'str'", "'i64'"]),
        (_user_type(TICKS, ("thread_name", "i64")), ["'thread_name'", "'str'", "'i64'"]),
        (_user_type(TICKS, ("Span_Id", "u64")), ["'Span_Id'", "correlation"]),
        (_user_type(TICKS, ("amount", "i64"), ("Amount", "f64")), ["'Amount'", "case"]),
        (_user_type(TICKS, name="Checkout"), ["'Checkout'", "lower-case"]),
    ],
)
def test_user_types_the_lake_could_not_write_are_refused_at_registration(
    ingest: Ingest, layout, words
) -> None:
    """Report A, finding 2: such layouts were accepted (201), then their fields were replaced
    by the lake's columns, or the conversion failed (KeyError, Arrow errors)."""
    process = process_document()
    ingest.call("/v1/processes", process)
    status, answer = ingest.call(
        "/v1/streams", stream_document(process["process_id"]) | {"layout": layout}
    )
    assert (status, answer["error"]["code"]) == (400, "invalid_layout"), answer
    for word in words:
        assert word in answer["error"]["message"]


def test_a_user_type_as_the_sdk_declares_it_registers(ingest: Ingest) -> None:
    correlation = [("thread_id", "u64"), ("thread_name", "str"), ("span_id", "u64")]
    correlation += [("span_kind", "u8"), ("trace_id", "str")]
    layout = _user_type(TICKS, ("order_id", "i64"), *correlation, name="checkout_v2")
    process = process_document()
    ingest.call("/v1/processes", process)
    status, answer = ingest.call(
        "/v1/streams", stream_document(process["process_id"]) | {"layout": layout}
    )
    assert status in (200, 201), answer


def _register(ingest: Ingest, layout: list[dict]) -> tuple[int, dict]:
    process = process_document()
    ingest.call("/v1/processes", process)
    return ingest.call("/v1/streams", stream_document(process["process_id"]) | {"layout": layout})


def test_a_later_version_may_add_fields_but_not_retype_one(ingest: Ingest) -> None:
    """Report A, finding 3: ``order_id`` declared str after int turned the column of every
    version's rows into text; refused at registration, naming the field and both types."""
    first = _user_type(TICKS, ("order_id", "i64"), ("amount", "f64"), name="checkout")
    assert _register(ingest, first)[0] in (200, 201)
    assert _register(ingest, first)[0] in (200, 201)  # every process declares it again
    added = _user_type(TICKS, ("order_id", "i64"), ("amount", "f64"), ("note", "str"))
    assert _register(ingest, [{**added[0], "name": "checkout"}])[0] in (200, 201)
    retyped = _user_type(TICKS, ("order_id", "str"), ("coupon", "str"), name="checkout")
    status, answer = _register(ingest, retyped)
    assert (status, answer["error"]["code"]) == (400, "invalid_layout")
    for word in ("'order_id'", "'i64'", "'str'", "new name"):
        assert word in answer["error"]["message"]
    # nothing of a refused layout is recorded: its new field may still be declared otherwise
    coupon = _user_type(TICKS, ("coupon", "i64"), name="checkout")
    assert _register(ingest, coupon)[0] in (200, 201)
    # another type may use the same field name with its own type
    other = _user_type(TICKS, ("order_id", "str"), name="refund")
    assert _register(ingest, other)[0] in (200, 201)
