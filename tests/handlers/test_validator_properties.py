"""Property tests of ingest's validators (issue 10): for any input, accept exactly what can be
stored and converted, and refuse everything else with a 4xx naming the field, never with
another exception."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocklake.errors import ClientError
from blocklake.format.schema import (
    MAX_EVENT_TYPES,
    SchemaError,
    event_types,
    layout_from_json,
    layout_from_text,
    layout_to_json,
)
from blocklake.ingest import validate
from blocklake.ingest.service import IngestService
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqliteExecutor
from tests.helpers import process_document

ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
"""Surrogates and NUL included: what ``json.loads`` can hand the service."""
TEXTS = st.one_of(
    st.text(ANY_CHARACTER, max_size=20),
    st.text(max_size=5000).map(lambda text: text * 2),
    st.sampled_from(["\udce9", "a\0b", "é" * 2049, "x" * 4096, ""]),
)
INTEGERS = st.one_of(
    st.integers(),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 2**64 - 1, 0, -1]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTEGERS | st.floats() | TEXTS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXTS, children, max_size=4),
    max_leaves=12,
)


def storable(text: str, limit: int) -> bool:
    try:
        return "\0" not in text and len(text.encode("utf-8")) <= limit
    except UnicodeEncodeError:
        return False


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_text_is_accepted_exactly_when_storable(text: str) -> None:
    try:
        assert validate.check_text("exe", text) == text
        accepted = True
    except ClientError as error:
        assert (error.status, error.code) == (400, "invalid_field")
        assert "'exe'" in error.message
        accepted = False
    assert accepted == storable(text, validate.MAX_TEXT_BYTES)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(INTEGERS, JSON_VALUES))
def test_integers_and_times_are_accepted_exactly_in_range(value: object) -> None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    for check, low, high in (
        (lambda d: validate.int64(d, "n"), -(2**63), 2**63 - 1),
        (lambda d: validate.int64(d, "n", low=1), 1, 2**63 - 1),
        (lambda d: validate.time_ns(d, "n"), 0, validate.MAX_TIME_NS - 1),
    ):
        try:
            assert check({"n": value}) == value
            accepted = True
        except ClientError as error:
            assert error.status == 400 and "'n'" in error.message
            accepted = False
        assert accepted == (is_int and low <= value <= high)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.fixed_dictionaries(
        {},
        optional={
            name: JSON_VALUES
            for name in (
                "process_id",
                "exe",
                "username",
                "computer",
                "start_time_ns",
                "start_ticks",
                "tick_frequency",
                "parent_process_id",
                "properties",
            )
        },
    ),
    base=st.booleans(),
)
def test_any_registration_is_stored_or_refused_with_a_4xx(tmp_path_factory, document, base):
    metadata = SqlMetadataStore(SqliteExecutor(":memory:"))
    metadata.migrate()
    service = IngestService(LocalBlobStore(tmp_path_factory.getbasetemp()), metadata, 1024)
    if base:  # mostly valid, one field at a time wrong
        document = {**process_document(), **document}
    try:
        assert service.register_process("t", document) is True
    except ClientError as error:
        assert 400 <= error.status < 500
        return
    stored = metadata.get_process("t", document["process_id"])
    assert stored.exe == document["exe"]  # what was accepted reads back as it was sent


def _built_in_doc() -> list[dict]:
    return layout_to_json(list(event_types(1).values()))


FIELD_NAMES = st.text(string.ascii_letters + "_", min_size=1, max_size=6)
LAYOUT_DOCS = st.one_of(
    JSON_VALUES,
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.one_of(st.integers(0, 70000), st.sampled_from([1, 2, 3, 999, 1000])),
                "name": st.one_of(FIELD_NAMES, st.sampled_from(["log_entry", "measure", "a b"])),
                "fields": st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": FIELD_NAMES,
                            "type": st.sampled_from(["i64", "u8", "str", "map", "i128"]),
                        }
                    ),
                    max_size=4,
                ),
            }
        ),
        max_size=4,
    ),
    st.sampled_from([_built_in_doc()]).flatmap(st.permutations),
)


@settings(max_examples=400, deadline=None)
@given(doc=LAYOUT_DOCS)
def test_any_layout_is_accepted_or_refused_with_a_schema_error(doc: object) -> None:
    try:
        layout = layout_from_json(doc)
    except SchemaError:
        return
    assert 0 < len(layout) <= MAX_EVENT_TYPES
    built_in = {t.id: t for t in event_types().values()}
    for type_id, event_type in layout.items():
        expected = built_in.get(type_id)
        if expected is not None:  # never redefined: its name, its revision-1 fields first
            first = event_types(1)[expected.name].fields
            assert event_type.name == expected.name
            assert event_type.fields[: len(first)] == first
        else:  # a user-defined type, or a built-in type of a newer revision
            assert event_type.name not in {t.name for t in built_in.values()}
    # the stored form reads back the same, through the cache too
    text = json.dumps(layout_to_json(layout), sort_keys=True)
    assert layout_from_text(text) == layout
    assert layout_from_text(text) is layout_from_text(text)


@pytest.mark.parametrize("text", ["[", "{}", "[]", '"x"'])
def test_a_layout_text_that_is_not_a_layout_is_a_schema_error(text: str) -> None:
    with pytest.raises(SchemaError):
        layout_from_text(text)
