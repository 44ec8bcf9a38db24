"""schemas/events.toml against the code that must agree with it."""

from __future__ import annotations

import tomllib

import pytest

from blocklake.format.schema import (
    FIELD_TYPES,
    FIELD_WIDTHS,
    EventType,
    SchemaError,
    event_types,
    layout_from_json,
    layout_to_json,
    log_levels,
    schemas_dir,
)
from blocklake.sdk import recording
from blocklake.sdk.logging_handler import level_code


def raw_events() -> dict:
    with open(schemas_dir() / "events.toml", "rb") as file:
        return tomllib.load(file)


def test_sdk_level_codes_match_events_toml() -> None:
    levels = {name: int(code) for code, name in raw_events()["log_levels"].items()}
    assert levels == recording.LEVEL_CODES
    assert {v: k for k, v in recording.LEVEL_CODES.items()} == log_levels()
    names = ("FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")
    assert tuple(getattr(recording, name) for name in names) == tuple(levels[n] for n in names)


def test_log_levels_are_ordered_most_severe_first() -> None:
    codes = list(log_levels())
    assert codes == sorted(codes) == list(range(1, len(codes) + 1))
    assert level_code(50) == recording.LEVEL_CODES["FATAL"]
    assert level_code(1) == recording.LEVEL_CODES["TRACE"]


def test_event_types_use_known_field_types_and_unique_ids_and_names() -> None:
    docs = raw_events()["event"]
    ids = [doc["id"] for doc in docs]
    names = [doc["name"] for doc in docs]
    assert len(set(ids)) == len(ids)
    assert len(set(names)) == len(names)
    assert all(0 < i < 1000 for i in ids)  # 1000 and up belong to user-defined types
    assert {"i64", "u64", "u32", "u8", "f64", "str", "map", "bool", "attrs"} == FIELD_TYPES
    assert set(FIELD_WIDTHS) == FIELD_TYPES - {"map"}
    for doc in docs:
        field_names = [f["name"] for f in doc["fields"]]
        assert len(set(field_names)) == len(field_names), doc["name"]
        assert field_names[0] == "ticks" and doc["fields"][0]["type"] == "i64", doc["name"]
        for field in doc["fields"]:
            assert field["type"] in FIELD_TYPES, (doc["name"], field)
    assert set(event_types()) == set(names)


def test_built_in_types_round_trip_through_json() -> None:
    known = list(event_types().values())
    assert list(layout_from_json(layout_to_json(known)).values()) == known
    for event_type in known:
        assert EventType.from_json(event_type.to_json()) == event_type


def test_span_begin_and_end_types_agree() -> None:
    known = event_types()
    assert known["thread_span_begin"].fields == known["async_span_begin"].fields
    assert known["thread_span_end"].fields == known["async_span_end"].fields
    assert [f.name for f in event_types(1)["thread_span_end"].fields] == ["ticks", "span_id"]
    assert [f.name for f in known["thread_span_end"].fields] == [
        "ticks",
        "span_id",
        "status",
        "exception_type",
        "exception_message",
    ]


GOOD = {"id": 1000, "name": "request", "fields": [{"name": "ticks", "type": "i64"}]}


@pytest.mark.parametrize(
    "document,words",
    [
        ([], ["object"]),
        ("request", ["object"]),
        ({**GOOD, "id": None}, ["id"]),
        ({**GOOD, "id": "1000"}, ["id", "'1000'"]),
        ({**GOOD, "id": 0}, ["id", "0"]),
        ({**GOOD, "id": 65536}, ["id", "65536"]),
        ({**GOOD, "id": 1.5}, ["id"]),
        ({**GOOD, "name": ""}, ["name"]),
        ({**GOOD, "name": 7}, ["name"]),
        ({**GOOD, "fields": []}, ["fields", "request"]),
        ({**GOOD, "fields": "ticks"}, ["fields"]),
        ({**GOOD, "fields": [{"type": "i64"}]}, ["name", "request"]),
        ({**GOOD, "fields": ["ticks"]}, ["name"]),
        ({**GOOD, "fields": [{"name": "ticks", "type": "int64"}]}, ["ticks", "int64", "type"]),
        ({**GOOD, "fields": [{"name": "size"}]}, ["size", "type"]),
    ],
)
def test_event_type_from_json_names_what_is_wrong(document: object, words: list[str]) -> None:
    with pytest.raises(SchemaError) as raised:
        EventType.from_json(document)
    for word in words:
        assert word in str(raised.value)


def test_event_type_from_json_rejects_bool_id() -> None:
    # True is an int in Python; an id of `true` in JSON is not an event type id
    with pytest.raises(SchemaError, match="id"):
        EventType.from_json({**GOOD, "id": True})


def test_event_type_from_json_rejects_duplicate_field_names() -> None:
    # two columns of the same name cannot become one Arrow table / Parquet file
    doc = {**GOOD, "fields": [{"name": "ticks", "type": "i64"}, {"name": "ticks", "type": "u8"}]}
    with pytest.raises(SchemaError, match="ticks"):
        EventType.from_json(doc)


def test_layout_from_json_rejects_duplicates_and_empties() -> None:
    with pytest.raises(SchemaError, match="1000"):
        layout_from_json([GOOD, GOOD])
    with pytest.raises(SchemaError, match="layout"):
        layout_from_json([])
    with pytest.raises(SchemaError, match="layout"):
        layout_from_json({"id": 1})
    assert layout_from_json([GOOD])[1000].name == "request"


def test_layout_from_json_rejects_two_types_of_one_name() -> None:
    # the decoder keys sections by type name: a second type of the same name would make a valid
    # block undecodable ("two sections") or hide one type's rows
    other = {**GOOD, "id": 1001}
    with pytest.raises(SchemaError, match="request"):
        layout_from_json([GOOD, other])
