"""Checks of the values ingest stores: each refusal is a 400 ``ClientError`` naming the field.

What is stored must be storable everywhere it goes (SQLite, PostgreSQL's TEXT and BIGINT,
Parquet's UTF-8 strings and microsecond timestamps) and convertible later, so the limits are
those of the narrowest of them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from blocklake.errors import ClientError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIN_TIME_NS = 0
"""Earliest time a process or block may have: 1970-01-01 UTC."""
MAX_TIME_NS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
"""Latest time a process or block may have: 2200-01-01 UTC (nanoseconds stay in an int64)."""
MAX_TEXT_BYTES = 4096
"""Longest process text (exe, username, computer) and property value, in UTF-8 bytes."""
MAX_NAME_BYTES = 256
"""Longest property key or stream tag, in UTF-8 bytes."""
MAX_ENTRIES = 256
"""Most properties of a process or stream, and most tags of a stream."""


def invalid(name: str, problem: str) -> ClientError:
    return ClientError(400, "invalid_field", f"field {name!r}: {problem}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


def field(document: dict, name: str, kind: type | tuple[type, ...], *, optional: bool = False):
    """``document[name]`` if it is a ``kind`` (a bool is not an int); None if optional and
    missing or null."""
    value = document.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        state = "missing" if name not in document else f"{type(value).__name__}"
        raise invalid(name, f"expected {_kind_name(kind)}, got {state}")
    return value


def check_text(name: str, value: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """UTF-8 encodable (no lone surrogate), no NUL (PostgreSQL TEXT refuses it), bounded."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise invalid(name, f"not valid Unicode text ({error.reason} at {error.start})") from None
    if "\0" in value:
        raise invalid(name, "contains a NUL character")
    if size > max_bytes:
        raise invalid(name, f"{size} bytes of UTF-8, at most {max_bytes}")
    return value


def text(document: dict, name: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    return check_text(name, field(document, name, str), max_bytes)


def int64(document: dict, name: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    value = field(document, name, int)
    if not low <= value <= high:
        raise invalid(name, f"{value} is outside {low}..{high}")
    return value


def time_ns(document: dict, name: str) -> int:
    """Nanoseconds since the epoch, between ``MIN_TIME_NS`` and ``MAX_TIME_NS``."""
    value = field(document, name, int)
    check_time(name, value)
    return value


def check_time(name: str, value: int) -> None:
    if not MIN_TIME_NS <= value < MAX_TIME_NS:
        raise invalid(name, f"{value} ns is not between 1970 and 2200")


def uuid_text(document: dict, name: str, *, optional: bool = False) -> str | None:
    value = field(document, name, str, optional=optional)
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(name, f"{value[:100]!r} is not a UUID") from None


def string_map(document: dict, name: str) -> dict[str, str]:
    value = document.get(name)
    if value is None:  # missing or null: no entries
        value = {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid(name, "expected an object of strings")
    if len(value) > MAX_ENTRIES:
        raise invalid(name, f"{len(value)} entries, at most {MAX_ENTRIES}")
    for key, item in value.items():
        check_text(f"{name} key", key, MAX_NAME_BYTES)
        check_text(f"{name}.{key}", item)
    return value


def string_list(document: dict, name: str) -> list[str]:
    value = field(document, name, list)
    if not all(isinstance(item, str) for item in value):
        raise invalid(name, "expected a list of strings")
    if len(value) > MAX_ENTRIES:
        raise invalid(name, f"{len(value)} entries, at most {MAX_ENTRIES}")
    for item in value:
        check_text(name, item, MAX_NAME_BYTES)
    return value
