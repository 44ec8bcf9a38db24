"""Issue 10, item 3: every field of the process and stream documents and of their layouts,
given any wrong JSON type, is a 400 naming the field, never a 500."""

from __future__ import annotations

import json

import pytest

from blocklake.format.schema import event_types, layout_to_json
from tests.handlers.test_ingest_refusals import Ingest
from tests.helpers import http_event, process_document, stream_document

WRONG = {
    "list": ["str"],
    "dict": {"a": 1},
    "int": 7,
    "float": 1.5,
    "true": True,
    "false": False,
    "null": None,
    "string": "x",
    "empty list": [],
    "empty dict": {},
    "zero": 0,
    "empty string": "",
}
PROCESS_FIELDS = {
    # field: names of the values above it accepts
    "process_id": set(),
    "exe": {"string", "empty string"},
    "username": {"string", "empty string"},
    "computer": {"string", "empty string"},
    "start_time_ns": {"int", "zero"},
    "start_ticks": {"int", "zero"},
    "tick_frequency": {"int"},
    "parent_process_id": {"null"},
    "properties": {"null", "empty dict"},
}
STREAM_FIELDS = {
    "stream_id": set(),
    "process_id": set(),
    "tags": {"empty list", "list"},
    "layout": set(),
    "properties": {"null", "empty dict"},
}
EVENT_TYPE_FIELDS = {"id": set(), "name": set(), "fields": set()}
FIELD_FIELDS = {"name": set(), "type": set()}
MATRIX = [
    (document, name, kind)
    for document, fields in (
        ("process", PROCESS_FIELDS),
        ("stream", STREAM_FIELDS),
        ("event type", EVENT_TYPE_FIELDS),
        ("field", FIELD_FIELDS),
    )
    for name in fields
    for kind in WRONG
]


@pytest.fixture
def ingest(settings, context) -> Ingest:
    return Ingest(settings, context)


def _with(document: dict, name: str, value: object) -> dict:
    return {**document, name: value}


@pytest.mark.parametrize("document,name,kind", MATRIX)
def test_a_wrong_json_type_is_a_400_naming_the_field(ingest, document, name, kind) -> None:
    value = WRONG[kind]
    process = process_document()
    if document == "process":
        status, answer = ingest.call("/v1/processes", _with(process, name, value))
        fields = PROCESS_FIELDS
    else:
        assert ingest.call("/v1/processes", process)[0] == 201
        stream = stream_document(process["process_id"], "log_entry")
        if document == "stream":
            stream = _with(stream, name, value)
            fields = STREAM_FIELDS
        else:
            (event_type,) = layout_to_json([event_types(1)["log_entry"]])
            if document == "event type":
                event_type = _with(event_type, name, value)
                fields = EVENT_TYPE_FIELDS
            else:
                event_type["fields"] = [_with(event_type["fields"][0], name, value)]
                fields = FIELD_FIELDS
            stream["layout"] = [event_type]
        status, answer = ingest.call("/v1/streams", stream)
    if kind in fields[name]:
        assert status == 201, answer
        return
    assert status == 400, answer
    assert f"'{name}'" in answer["error"]["message"] or name in answer["error"]["message"], answer


@pytest.mark.parametrize("body", [[], ["x"], "x", 1, None, True])
@pytest.mark.parametrize("path", ["/v1/processes", "/v1/streams"])
def test_a_document_that_is_not_an_object_is_a_400(ingest, path, body) -> None:
    event = http_event(path, json.dumps(body).encode(), content_type="application/json")
    response = ingest.handle(event, ingest.context)
    assert response["statusCode"] == 400, response
