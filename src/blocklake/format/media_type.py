"""What an attachment's fields must be, shared by the API, the SDK and block validation
(standard library only): an RFC 9110 media type, a lowercase UUID, a SHA-256 in lowercase hex.

A media type is ``type/subtype`` then ``; name=value`` parameters whose value is a token or a
quoted string: ASCII without control characters but tab, matched whole (``fullmatch``), so it
can never carry a CR or LF into a header."""

from __future__ import annotations

import re

MAX_CONTENT_TYPE_CHARS = 255
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_CONTENT_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*"
)
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def valid_content_type(content_type: object) -> bool:
    """True for a media type of at most ``MAX_CONTENT_TYPE_CHARS`` characters."""
    return (
        isinstance(content_type, str)
        and len(content_type) <= MAX_CONTENT_TYPE_CHARS
        and _CONTENT_TYPE.fullmatch(content_type) is not None
    )


def valid_attachment_id(attachment_id: object) -> bool:
    """True for a canonical (lowercase, hyphenated) UUID."""
    return isinstance(attachment_id, str) and _ID.fullmatch(attachment_id) is not None


def valid_sha256(sha256: object) -> bool:
    """True for 64 lowercase hexadecimal digits."""
    return isinstance(sha256, str) and _SHA256.fullmatch(sha256) is not None
