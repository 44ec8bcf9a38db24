"""Declarations the server would refuse raise ``ValueError`` at ``sdk.event_type``, naming the
argument (report A, findings 2, 3 and 5: they were accepted, then refused at upload or their
fields lost to the lake's columns)."""

from __future__ import annotations

import pytest

from blocklake import sdk
from blocklake.format.schema import EventType, Field, check_user_type
from blocklake.sdk import recording


@pytest.mark.parametrize(
    "name,fields,words",
    [
        ("shift", {"date": str}, ["'date'", "reserved"]),
        ("shift", {"hour": int}, ["'hour'", "reserved"]),
        ("shift", {"tenant": str}, ["'tenant'", "reserved"]),
        ("shift", {"Time": int}, ["'Time'", "reserved"]),
        ("shift", {"ok": int, "Ticks": int}, ["'Ticks'", "reserved"]),
        ("shift", {"amount": int, "Amount": float}, ["'Amount'", "case"]),
        ("wide", {f"f{i}": int for i in range(300)}, ["300 fields", "at most 250"]),
        ("log_entry", {"a": int}, ["'log_entry'", "built-in"]),
        ("measure", {"a": int}, ["'measure'", "built-in"]),
        ("Checkout", {"a": int}, ["'Checkout'", "lower-case"]),
    ],
)
def test_declarations_the_server_refuses_raise(name: str, fields: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        sdk.event_type(name, **fields)
    for word in words:
        assert word in str(raised.value)
    assert name not in recording._user_types


def test_the_widest_declaration_the_sdk_allows_is_one_the_server_takes() -> None:
    fields = {f"f{i}": "i64" for i in range(recording.MAX_USER_FIELDS)}
    declared = (
        Field("ticks", "i64"),
        *(Field(n, t) for n, t in fields.items()),
        *(Field(n, t) for n, t in recording.CORRELATION_FIELDS),
    )
    assert len(declared) == 256
    check_user_type(EventType(1000, "wide_ok", declared))  # raises nothing


def test_every_reserved_sdk_field_is_refused_by_the_server() -> None:
    for reserved in recording.RESERVED_FIELDS.difference(dict(recording.CORRELATION_FIELDS)):
        event_type = EventType(1000, "t", (Field("ticks", "i64"), Field(reserved, "str")))
        if reserved == "ticks":
            continue
        with pytest.raises(ValueError, match=reserved):
            check_user_type(event_type)
