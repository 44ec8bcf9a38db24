"""Ingest's validators one by one: the exact refusal of each (a 400 ``invalid_field`` naming the
field and the problem) and the boundaries of each limit (issue 16: mutation testing found the
messages and the limits' edges unasserted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blocklake.errors import ClientError
from blocklake.ingest import validate

UUID = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"


def refusal(check, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        check(*args, **kwargs)
    assert (caught.value.status, caught.value.code) == (400, "invalid_field")
    return caught.value.message


def test_the_limits() -> None:
    assert (validate.INT64_MIN, validate.INT64_MAX) == (-(2**63), 2**63 - 1)
    assert validate.MIN_TIME_NS == 0
    assert validate.MAX_TIME_NS == 7_258_118_400 * 10**9
    assert datetime.fromtimestamp(validate.MAX_TIME_NS // 10**9, UTC) == datetime(
        2200, 1, 1, tzinfo=UTC
    )
    assert (validate.MAX_TEXT_BYTES, validate.MAX_NAME_BYTES, validate.MAX_ENTRIES) == (
        4096,
        256,
        256,
    )


def test_field_returns_a_value_of_its_kind_and_names_what_it_got() -> None:
    assert validate.field({"n": 3}, "n", int) == 3
    assert validate.field({"n": "x"}, "n", (int, str)) == "x"
    assert validate.field({}, "n", int, optional=True) is None
    assert validate.field({"n": None}, "n", int, optional=True) is None
    assert refusal(validate.field, {}, "n", int) == "field 'n': expected int, got missing"
    assert refusal(validate.field, {"n": None}, "n", int) == "field 'n': expected int, got NoneType"
    assert refusal(validate.field, {"n": True}, "n", int) == "field 'n': expected int, got bool"
    assert refusal(validate.field, {"n": "1"}, "n", int, optional=True) == (
        "field 'n': expected int, got str"
    )
    assert refusal(validate.field, {"n": []}, "n", (int, str)) == (
        "field 'n': expected int or str, got list"
    )
    # a bool is an int only where an int is asked for
    assert validate.field({"n": True}, "n", (int, bool)) is True


def test_text_is_checked_for_unicode_nul_and_size() -> None:
    assert validate.check_text("exe", "x" * 4096) == "x" * 4096
    assert validate.check_text("exe", "é" * 2048) == "é" * 2048
    assert refusal(validate.check_text, "exe", "x" * 4097) == (
        "field 'exe': 4097 bytes of UTF-8, at most 4096"
    )
    assert refusal(validate.check_text, "exe", "é" * 2049) == (
        "field 'exe': 4098 bytes of UTF-8, at most 4096"
    )
    assert validate.check_text("tag", "x" * 10, 10) == "x" * 10
    assert refusal(validate.check_text, "tag", "x" * 11, 10) == (
        "field 'tag': 11 bytes of UTF-8, at most 10"
    )
    assert refusal(validate.check_text, "exe", "ab\udce9") == (
        "field 'exe': not valid Unicode text (surrogates not allowed at 2)"
    )
    assert refusal(validate.check_text, "exe", "a\0b") == "field 'exe': contains a NUL character"
    assert validate.text({"exe": "x" * 4096}, "exe") == "x" * 4096
    assert refusal(validate.text, {"exe": "x" * 4097}, "exe") == (
        "field 'exe': 4097 bytes of UTF-8, at most 4096"
    )
    assert refusal(validate.text, {"exe": "xx"}, "exe", 1) == (
        "field 'exe': 2 bytes of UTF-8, at most 1"
    )
    assert refusal(validate.text, {"exe": 1}, "exe") == "field 'exe': expected str, got int"


def test_integers_within_their_bounds() -> None:
    assert validate.int64({"n": 2**63 - 1}, "n") == 2**63 - 1
    assert validate.int64({"n": -(2**63)}, "n") == -(2**63)
    assert refusal(validate.int64, {"n": 2**63}, "n") == (
        f"field 'n': {2**63} is outside {-(2**63)}..{2**63 - 1}"
    )
    assert refusal(validate.int64, {"n": -(2**63) - 1}, "n") == (
        f"field 'n': {-(2**63) - 1} is outside {-(2**63)}..{2**63 - 1}"
    )
    assert validate.int64({"n": 1}, "n", low=1) == 1
    assert (
        refusal(validate.int64, {"n": 0}, "n", low=1) == f"field 'n': 0 is outside 1..{2**63 - 1}"
    )
    assert validate.int64({"n": 5}, "n", 1, 5) == 5
    assert refusal(validate.int64, {"n": 6}, "n", 1, 5) == "field 'n': 6 is outside 1..5"
    assert refusal(validate.int64, {"n": 1.0}, "n") == "field 'n': expected int, got float"


def test_times_between_1970_and_2200() -> None:
    assert validate.time_ns({"t": 0}, "t") == 0
    assert validate.time_ns({"t": validate.MAX_TIME_NS - 1}, "t") == validate.MAX_TIME_NS - 1
    assert refusal(validate.time_ns, {"t": -1}, "t") == (
        "field 't': -1 ns is not between 1970 and 2200"
    )
    assert refusal(validate.time_ns, {"t": validate.MAX_TIME_NS}, "t") == (
        f"field 't': {validate.MAX_TIME_NS} ns is not between 1970 and 2200"
    )
    assert refusal(validate.time_ns, {"t": "0"}, "t") == "field 't': expected int, got str"
    validate.check_time("t", 0)
    assert refusal(validate.check_time, "t", -5) == "field 't': -5 ns is not between 1970 and 2200"


def test_uuids_are_read_in_their_canonical_form() -> None:
    assert validate.uuid_text({"id": UUID.upper()}, "id") == UUID
    assert validate.uuid_text({"id": "{" + UUID.replace("-", "") + "}"}, "id") == UUID
    assert validate.uuid_text({}, "id", optional=True) is None
    assert validate.uuid_text({"id": None}, "id", optional=True) is None
    assert validate.uuid_text({"id": UUID}, "id", optional=True) == UUID
    assert refusal(validate.uuid_text, {}, "id") == "field 'id': expected str, got missing"
    assert refusal(validate.uuid_text, {"id": "not-a-uuid"}, "id") == (
        "field 'id': 'not-a-uuid' is not a UUID"
    )
    long = "z" * 150
    assert refusal(validate.uuid_text, {"id": long}, "id") == (
        f"field 'id': {'z' * 100!r} is not a UUID"
    )


def test_string_maps() -> None:
    assert validate.string_map({}, "properties") == {}
    assert validate.string_map({"properties": None}, "properties") == {}
    full = {f"k{i}": "v" for i in range(256)}
    assert validate.string_map({"properties": full}, "properties") == full
    edge = {"k" * 256: "v" * 4096}
    assert validate.string_map({"properties": edge}, "properties") == edge
    expected_object = "field 'properties': expected an object of strings"
    for value in (["k", "v"], "kv", {"k": 1}, {1: "v"}, {"a": "b", "k": None}):
        assert refusal(validate.string_map, {"properties": value}, "properties") == expected_object
    many = {f"k{i}": "v" for i in range(257)}
    assert refusal(validate.string_map, {"properties": many}, "properties") == (
        "field 'properties': 257 entries, at most 256"
    )
    assert refusal(validate.string_map, {"properties": {"k" * 257: "v"}}, "properties") == (
        "field 'properties key': 257 bytes of UTF-8, at most 256"
    )
    assert refusal(validate.string_map, {"properties": {"k": "v" * 4097}}, "properties") == (
        "field 'properties.k': 4097 bytes of UTF-8, at most 4096"
    )


def test_string_lists() -> None:
    assert validate.string_list({"tags": []}, "tags") == []
    full = ["t" * 256] * 256
    assert validate.string_list({"tags": full}, "tags") == full
    assert refusal(validate.string_list, {}, "tags") == "field 'tags': expected list, got missing"
    assert refusal(validate.string_list, {"tags": ["a", 1]}, "tags") == (
        "field 'tags': expected a list of strings"
    )
    assert refusal(validate.string_list, {"tags": ["a"] * 257}, "tags") == (
        "field 'tags': 257 entries, at most 256"
    )
    assert refusal(validate.string_list, {"tags": ["a", "t" * 257]}, "tags") == (
        "field 'tags': 257 bytes of UTF-8, at most 256"
    )
