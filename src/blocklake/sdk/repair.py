"""Values the encoder cannot take, found off the record path: each costs only itself.

The record path checks no types (that would cost every event). When a chunk of events fails to
encode, each event is checked against its event type: a value of the wrong type is converted
(to ``str`` for text, ``float`` for numbers; counted as coerced) or, if it cannot be, its event
is dropped alone (counted as a bad value). A record too large for any block has its text cut,
with a visible marker (counted as truncated).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from blocklake.format.encode import StringTable, encode_section
from blocklake.format.schema import EventType

_log = logging.getLogger("blocklake.sdk")


@dataclass
class Repairs:
    """What repairing one stream's events did, in events."""

    coerced: int = 0
    dropped: int = 0
    truncated: int = 0

    def drop(self) -> None:
        self.dropped += 1


class _Unfixable(Exception):
    pass


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        raise _Unfixable from None


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except Exception:
        raise _Unfixable from None


def _mapping(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {_text(k): _text(v) for k, v in value.items()}
    return {"properties": _text(value)}


def _attributes(value: object) -> dict[str, object]:
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    return {"attributes": _text(value)}


def _integer(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except Exception:
        raise _Unfixable from None


_FIX = {
    "str": _text,
    "f64": _number,
    "map": _mapping,
    "attrs": _attributes,
    "bool": bool,
    "i64": _integer,
}
_EXACT = {
    "bool": (bool,),
    "i64": (int,),
    "str": (str,),
    "f64": (float, int),
    "map": (dict, type(None)),
    "attrs": (dict, str, type(None)),
}


def _repair_one(event_type: EventType, event: tuple) -> tuple[tuple, bool]:
    """(the event with each value of a wrong type converted, whether any was)."""
    values = list(event)
    changed = False
    for index, field in enumerate(event_type.fields):
        value = values[index]
        exact = _EXACT.get(field.type)
        if exact is None:  # integers the SDK itself wrote (ticks) or checked (level)
            if type(value) is not int:
                raise _Unfixable
            continue
        if type(value) in exact and (field.type != "map" or _plain_map(value)):
            continue
        if field.type == "attrs" and isinstance(value, str):  # a frozen set
            continue
        values[index] = _FIX[field.type](value)
        changed = True
    return tuple(values), changed


def _plain_map(value: dict | None) -> bool:
    return value is None or all(type(k) is str and type(v) is str for k, v in value.items())


def _encodes(event_type: EventType, event: tuple) -> bool:
    """Whether the event's values of ``event_type``'s fields (its first ones) encode."""
    try:
        values = event[: len(event_type.fields)]
        encode_section(event_type, [[value] for value in values], StringTable())
    except (TypeError, ValueError, OverflowError, AttributeError):
        return False
    return True


def repair_events(event_type: EventType, events: list[tuple], repairs: Repairs) -> list[tuple]:
    """``events`` that encode: converted where a value has the wrong type, without those that
    cannot be (counted in ``repairs``)."""
    kept = []
    coerced = dropped = 0
    for event in events:
        try:
            fixed, changed = _repair_one(event_type, event)
        except _Unfixable:
            dropped += 1
            continue
        if not _encodes(event_type, fixed):  # a level out of range, say
            dropped += 1
            continue
        coerced += changed
        kept.append(fixed)
    repairs.coerced += coerced
    repairs.dropped += dropped
    _log.warning(
        "blocklake: %s events had values of the wrong type: %d converted, %d dropped",
        event_type.name,
        coerced,
        dropped,
    )
    return kept


def truncate_event(event: tuple, max_bytes: int) -> tuple:
    """The event with each text longer than ``max_bytes`` (UTF-8) cut, marked as cut."""
    return tuple(
        {_cut(k, max_bytes): _cut(v, max_bytes) for k, v in value.items()}
        if isinstance(value, dict)
        else _cut(value, max_bytes)
        for value in event
    )


def _cut(value: object, max_bytes: int) -> object:
    if not isinstance(value, str) or len(value) <= max_bytes // 4:
        return value
    data = value.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return value
    kept = data[:max_bytes].decode("utf-8", "ignore")
    return truncated(kept, len(data) - len(kept.encode("utf-8")))


def truncated(kept: str, cut_bytes: int) -> str:
    """Text cut visibly: what is kept, then how many bytes (UTF-8) were cut. The same marker
    for log text and span names."""
    return f"{kept}...[truncated {cut_bytes} bytes]"
