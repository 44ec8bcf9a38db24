"""The process's and streams' own settings as the server's registration takes them, whatever
the application passed: text coerced to ``str`` and made valid (no lone surrogate, no NUL),
each text and key cut to the server's length caps and the properties to its entry count, with
a visible marker. One odd value never costs the process its registration, hence every event.

The caps are the server's (``blocklake.ingest.validate``; the SDK may not import it, a test
checks they agree).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from blocklake.sdk.repair import truncated

_log = logging.getLogger("blocklake.sdk")

MAX_TEXT_BYTES = 4096
"""Longest process text (exe, username, computer) and property value, in UTF-8 bytes."""
MAX_NAME_BYTES = 256
"""Longest property key or stream tag, in UTF-8 bytes."""
MAX_ENTRIES = 256
"""Most properties of a process or stream."""
_MARKER_ROOM = 40
"""Bytes kept free for the marker of a cut text."""
CUT_ENTRIES_KEY = "blocklake.properties_cut"
"""The property that says how many properties were left out."""


def text(value: object, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """``value`` as registration text: a ``str`` (bytes and paths as file names are, anything
    else by ``str``), valid UTF-8 without NUL, at most ``max_bytes`` (cut visibly)."""
    if isinstance(value, bytes | bytearray):
        value = os.fsdecode(bytes(value))
    elif isinstance(value, os.PathLike):
        try:
            value = os.fsdecode(os.fspath(value))
        except Exception:
            value = _str(value)
    elif value is None:
        value = ""
    elif type(value) is not str:
        value = _str(value)
    assert isinstance(value, str)
    data = value.encode("utf-8", "replace").replace(b"\0", b"?")
    if len(data) > max_bytes:
        kept = data[: max_bytes - _MARKER_ROOM].decode("utf-8", "ignore")
        return truncated(kept, len(data) - len(kept.encode("utf-8")))
    return data.decode("utf-8")


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def properties(value: object, reserved: int = 0) -> dict[str, str]:
    """``value`` as a registration's properties: a mapping, or pairs, or else one property
    ``properties`` holding its text; keys and values as ``text``; at most ``MAX_ENTRIES`` less
    ``reserved`` (the SDK's own) entries, the rest left out and counted in ``CUT_ENTRIES_KEY``."""
    if value is None:
        return {}
    pairs: list = []
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif not isinstance(value, str | bytes | bytearray):
        try:
            pairs = list(value)  # type: ignore[call-overload]
        except TypeError:
            pairs = []
        if not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
            pairs = []
    if not pairs and not isinstance(value, Mapping | list | tuple):
        pairs = [("properties", value)]
    room = MAX_ENTRIES - reserved
    cut = len(pairs) - room + 1 if len(pairs) > room else 0
    result = {text(k, MAX_NAME_BYTES): text(v) for k, v in pairs[: len(pairs) - cut]}
    if cut:
        result[CUT_ENTRIES_KEY] = f"{cut} properties left out (the server takes {MAX_ENTRIES})"
    return result


def coerced(name: str, value: object) -> None:
    _log.warning("blocklake: init's %s %r is not usable as given: coerced", name, value)
