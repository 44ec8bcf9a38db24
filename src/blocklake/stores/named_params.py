"""Finds the ``:name`` parameters of a statement the way PostgreSQL's lexer sees the text.

The metadata SQL is written once with ``:name`` parameters. psycopg wants ``%(name)s`` and a
doubled ``%``; the RDS Data API wants only the parameters a statement names. Both need to skip
what is not code: string literals, quoted identifiers, comments, dollar-quoted bodies, and the
``::`` cast operator, which a naive regular expression mistakes for a parameter.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
      (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'          # escape string: E'it\'s'
    | '(?:[^']|'')*'                               # string literal: 'it''s'
    | "(?:[^"]|"")*"                               # quoted identifier
    | --[^\n]*                                     # line comment
    | /\*.*?\*/                                    # block comment
    | \$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?\$(?P=tag)\$   # dollar-quoted body
    | ::                                           # cast operator, never a parameter
    | (?<![\w:]):(?P<name>[A-Za-z_][A-Za-z0-9_]*)  # :name parameter
    | %                                            # modulo operator
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class NamedStatement:
    pyformat: str
    """The statement for psycopg: ``%(name)s`` placeholders, ``%`` doubled."""
    names: tuple[str, ...]
    """Parameter names in order of first appearance."""


@functools.lru_cache(maxsize=512)
def parse_named(sql: str) -> NamedStatement:
    """Cached: the store sends the same few statements over and over."""
    names: dict[str, None] = {}

    def rewrite(match: re.Match[str]) -> str:
        token = match.group(0)
        if match.group("name"):
            names.setdefault(match.group("name"))
            return f"%({match.group('name')})s"
        return token.replace("%", "%%")  # psycopg reads every %, even inside literals

    return NamedStatement(_TOKEN.sub(rewrite, sql), tuple(names))
