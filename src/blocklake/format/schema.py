"""Event types, log levels and lake tables, read from the ``schemas/`` definitions.

Everything that knows the shape of an event or a table derives it from here, so that one edit in
``schemas/`` changes the encoders, decoders, Parquet files and Glue tables together.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

FIELD_WIDTHS = {"i64": 8, "u64": 8, "f64": 8, "u32": 4, "u8": 1, "bool": 1, "str": 4, "attrs": 4}
"""Bytes per row of each fixed-width field type; ``map`` is variable and handled apart.
``attrs`` is a string reference (to a JSON object of typed attributes), ``bool`` a byte 0/1."""
REFERENCE_TYPES = frozenset({"str", "attrs"})
"""Field types whose values are references into the block's string table."""

FIELD_TYPES = frozenset({*FIELD_WIDTHS, "map"})

MAX_EVENT_TYPES = 256
"""Event types one stream's layout may hold."""
MAX_FIELDS = 256
"""Fields one event type may have."""
FIRST_USER_TYPE_ID = 1000
"""Ids below this belong to the built-in event types (``events.toml``) and mean exactly them."""
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""Event type and field names: they become table and column names."""


CURRENT_REVISION = 2
"""The revision of the built-in event types this code writes (``since`` in events.toml)."""


class SchemaError(ValueError):
    """A layout or definition that cannot be used to encode or decode blocks."""


def schemas_dir() -> Path:
    """The schema definitions: inside the installed wheel, else at the top of the source tree."""
    here = Path(__file__).resolve().parent
    packaged = here.parent / "schemas"
    return packaged if packaged.is_dir() else here.parents[2] / "schemas"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class EventType:
    id: int
    name: str
    fields: tuple[Field, ...]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "fields": [{"name": f.name, "type": f.type} for f in self.fields],
        }

    @classmethod
    def from_json(cls, doc: object) -> EventType:
        """Validates an event type sent by a client, naming the part that is wrong."""
        if not isinstance(doc, dict):
            raise SchemaError("an event type must be an object with id, name and fields")
        type_id, name, fields = doc.get("id"), doc.get("name"), doc.get("fields")
        if not isinstance(type_id, int) or isinstance(type_id, bool) or not 0 < type_id < 65536:
            raise SchemaError(f"event type id must be an integer in 1..65535, got {type_id!r}")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"event type {type_id}: name must be a non-empty string")
        if not NAME_PATTERN.match(name):
            raise SchemaError(
                f"event type {type_id}: name {name[:140]!r} must be 1-128 letters, digits or _"
            )
        if not isinstance(fields, list) or not fields:
            raise SchemaError(f"event type {name!r}: fields must be a non-empty list")
        if len(fields) > MAX_FIELDS:
            raise SchemaError(f"event type {name!r}: {len(fields)} fields, at most {MAX_FIELDS}")
        parsed = []
        seen: set[str] = set()  # a set, not a scan of parsed: linear in the number of fields
        for index, field in enumerate(fields):
            if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                raise SchemaError(
                    f"event type {name!r}: fields[{index}] must be an object with a string "
                    "'name' and 'type'"
                )
            field_name = field["name"]
            if not NAME_PATTERN.match(field_name):
                raise SchemaError(
                    f"event type {name!r}: field name {field_name[:140]!r} must be 1-128 "
                    "letters, digits or _"
                )
            if not isinstance(field.get("type"), str) or field["type"] not in FIELD_TYPES:
                raise SchemaError(
                    f"event type {name!r}: field {field_name!r} has type "
                    f"{field.get('type')!r}, expected one of {sorted(FIELD_TYPES)}"
                )
            if field_name in seen:
                raise SchemaError(f"event type {name!r}: field {field_name!r} appears twice")
            seen.add(field_name)
            parsed.append(Field(field_name, field["type"]))
        return cls(type_id, name, tuple(parsed))


Layout = dict[int, EventType]
"""The event types a stream may carry, by type id."""


def layout_from_json(doc: object) -> Layout:
    """Validates a stream's layout in time linear in its size: at most ``MAX_EVENT_TYPES``
    types of at most ``MAX_FIELDS`` fields. A built-in type (its id or its name) has its
    revision-1 fields first, exactly, then any later fields: those events.toml knows with their
    type, others (a newer SDK's) of any wire type, kept in the raw block. Other ids below
    ``FIRST_USER_TYPE_ID`` are built-in types of a newer version (decoded, not converted).
    Raises ``SchemaError`` naming the offending part."""
    if not isinstance(doc, list) or not doc:
        raise SchemaError("layout must be a non-empty list of event types")
    if len(doc) > MAX_EVENT_TYPES:
        raise SchemaError(f"layout has {len(doc)} event types, at most {MAX_EVENT_TYPES}")
    built_in = _built_in_by_id()
    built_in_ids = {event_type.name: event_type.id for event_type in built_in.values()}
    layout: Layout = {}
    names: set[str] = set()
    for item in doc:
        event_type = EventType.from_json(item)
        if event_type.id in layout:
            raise SchemaError(f"layout has event type id {event_type.id} twice")
        if event_type.name in names:
            raise SchemaError(f"layout has event type name {event_type.name!r} twice")
        expected = built_in.get(event_type.id)
        if event_type.name in built_in_ids and event_type.id != built_in_ids[event_type.name]:
            raise SchemaError(
                f"event type name {event_type.name!r} is built in with id "
                f"{built_in_ids[event_type.name]}, not {event_type.id}"
            )
        if expected is not None:
            _check_built_in(event_type, expected)
        names.add(event_type.name)
        layout[event_type.id] = event_type
    return layout


def _check_built_in(event_type: EventType, expected: EventType) -> None:
    """``event_type`` is a revision of the built-in ``expected``: its revision-1 fields, then
    later ones, each field events.toml knows with its type there."""
    if event_type.name != expected.name:
        raise SchemaError(
            f"event type {event_type.id} is the built-in {expected.name!r}: its name must be "
            f"{expected.name!r}, not {event_type.name[:140]!r}"
        )
    first = revision_fields(expected, 1)
    if event_type.fields[: len(first)] != first:
        raise SchemaError(
            f"event type {event_type.id} is the built-in {expected.name!r}: its first fields "
            f"must be exactly the name and type of {[f.name for f in first]} of events.toml"
        )
    known = {field.name: field.type for field in expected.fields}
    for field in event_type.fields[len(first) :]:
        if known.get(field.name, field.type) != field.type:
            raise SchemaError(
                f"event type {expected.name!r}: field {field.name!r} is built in with type "
                f"{known[field.name]!r}, not {field.type!r}"
            )


USER_CORRELATION_FIELDS = {
    "thread_id": "u64",
    "thread_name": "str",
    "span_id": "u64",
    "span_kind": "u8",
    "trace_id": "str",
}
"""Fields a user-defined type may carry after its own, with exactly these types: the lake
writes them to the correlation columns of every ``events_<name>`` table."""
USER_LAKE_COLUMNS = frozenset({"process_id", "stream_id", "block_id", "time"})
"""Columns the lake writes first in every ``events_<name>`` table: no field may take them."""
USER_TYPE_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,99}$")
"""A user-defined type's name: lower case (its table is ``events_<name>``, and SQL names
differing only in case are one name), at most 100 characters (the SDK's limit)."""


def check_user_type(event_type: EventType) -> None:
    """A user-defined type (id ``FIRST_USER_TYPE_ID`` or more) whose events the lake can
    convert: ``ticks`` (i64) first; no field named as a lake column (``process_id``,
    ``stream_id``, ``block_id``, ``time``) or a partition (``tenant``, ``date``, ``hour``);
    the correlation fields only with their types; no two fields whose names differ only in
    case (SQL's names do not). Raises ``SchemaError`` naming the field."""
    name = event_type.name
    if not USER_TYPE_NAME_PATTERN.match(name):
        raise SchemaError(
            f"event type {event_type.id}: user-defined type name {name[:140]!r} must be 1-100 "
            "lower-case letters, digits or _, not a digit first (names differing only in case "
            "would share a table)"
        )
    first = event_type.fields[0]
    if first != Field("ticks", "i64"):
        raise SchemaError(
            f"event type {name!r}: a user-defined type's first field must be 'ticks' of type "
            f"'i64', not {first.name[:140]!r} of type {first.type!r}"
        )
    reserved = USER_LAKE_COLUMNS.union(partition_keys())
    seen: dict[str, str] = {}
    for field in event_type.fields[1:]:
        lower = field.name.lower()
        if lower == "ticks" or lower in reserved:
            raise SchemaError(
                f"event type {name!r}: field name {field.name!r} is reserved (the lake's "
                f"columns and partitions: {sorted(reserved | {'ticks'})})"
            )
        wanted = USER_CORRELATION_FIELDS.get(lower)
        if wanted is not None and (field.name != lower or field.type != wanted):
            raise SchemaError(
                f"event type {name!r}: field {field.name!r} is a correlation column: it must be "
                f"{lower!r} of type {wanted!r}, not of type {field.type!r}"
            )
        if lower in seen:
            raise SchemaError(
                f"event type {name!r}: fields {seen[lower]!r} and {field.name!r} differ only in "
                "case (one column in SQL)"
            )
        seen[lower] = field.name


@functools.lru_cache(maxsize=1024)
def layout_from_text(text: str) -> Layout:
    """``layout_from_json`` of a JSON text, parsed and checked once per distinct text: every
    upload and conversion of a stream reads its layout, which never changes. The layout
    returned is shared: callers must not modify it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(f"layout is not valid JSON: {error}") from None
    return layout_from_json(doc)


def layout_to_json(event_types: list[EventType] | Layout) -> list[dict]:
    values = event_types.values() if isinstance(event_types, dict) else event_types
    return [event_type.to_json() for event_type in values]


@functools.cache
def _events_doc() -> dict:
    with open(schemas_dir() / "events.toml", "rb") as file:
        return tomllib.load(file)


@functools.cache
def event_types(revision: int = CURRENT_REVISION) -> dict[str, EventType]:
    """The built-in event types, by name, with the fields of ``revision`` (1: the original
    ones, what v1 SDKs send; the default: every field this code knows)."""
    return {
        doc["name"]: EventType(
            doc["id"],
            doc["name"],
            tuple(
                Field(f["name"], f["type"]) for f in doc["fields"] if f.get("since", 1) <= revision
            ),
        )
        for doc in _events_doc()["event"]
    }


def revision_fields(event_type: EventType, revision: int) -> tuple[Field, ...]:
    """The fields the built-in ``event_type`` had in ``revision``."""
    return event_types(revision)[event_type.name].fields


@functools.cache
def _built_in_by_id() -> dict[int, EventType]:
    return {event_type.id: event_type for event_type in event_types().values()}


@functools.cache
def log_levels() -> dict[int, str]:
    """Wire code of each log level to its name, most severe first."""
    return {int(code): name for code, name in _events_doc()["log_levels"].items()}


@functools.cache
def severity_numbers() -> dict[str, int]:
    """OpenTelemetry SeverityNumber of each log level name."""
    return dict(_events_doc()["log_severity_numbers"])


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class TableDef:
    name: str
    doc: str
    columns: tuple[Column, ...]
    source: tuple[str, ...]


@functools.cache
def _tables_doc() -> dict:
    with open(schemas_dir() / "tables.toml", "rb") as file:
        return tomllib.load(file)


@functools.cache
def tables() -> dict[str, TableDef]:
    """The lake tables, by name."""
    return {
        name: TableDef(
            name,
            doc["doc"],
            tuple(Column(c["name"], c["type"]) for c in doc["columns"]),
            tuple(doc.get("source", ())),
        )
        for name, doc in _tables_doc()["tables"].items()
    }


def partition_keys() -> tuple[str, ...]:
    return tuple(_tables_doc()["partition_keys"])
