"""Python client of a blocklake query API (local ``blocklake serve`` or deployed).

    >>> from blocklake import client
    >>> lake = client.connect("http://127.0.0.1:8787", api_key="blocklake-local")
    >>> table = lake.query("SELECT level, count(*) AS n FROM log_entries GROUP BY level",
    ...                    begin="2026-11-30T00:00:00Z", end="2026-11-30T06:00:00Z")
    >>> table.to_pandas()  # when pandas is installed

Times are ISO 8601 strings (UTC when they name no zone), ``datetime`` objects (naive ones are
UTC), or integers of nanoseconds since the epoch. Needs ``pyarrow`` (the ``lake`` extra) and the
standard library, nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

DEFAULT_SPAN = timedelta(hours=24)
"""How far back a query reaches when it gives no ``begin``."""
TRUNCATED_HEADER = "X-Blocklake-Truncated"

Time = str | int | datetime


class TruncatedWarning(UserWarning):
    """``Client.query`` answered fewer rows than the query has: a limit cut them."""


class QueryError(Exception):
    """The service refused or failed the query (``status`` and ``code`` as it answered), or
    could not be reached (``status`` 0, ``code`` ``unreachable``). ``str()`` is one line."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    truncated_by: str | None
    """``"max_rows"`` or ``"max_result_bytes"`` when rows were cut, else None."""


@dataclass(frozen=True)
class Download:
    """An attachment written to ``path``: ``size`` bytes whose SHA-256 is ``sha256`` (hex)."""

    path: Path
    name: str
    content_type: str
    size: int
    sha256: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A download's redirect is followed by hand: urllib would send the API key along to the
    presigned URL (S3 refuses two authentications, and the key must not leave the API)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_DOWNLOAD_CHUNK = 1024 * 1024
MAX_FILENAME_BYTES = 255
"""The longest file name most file systems allow (ext4, APFS, NTFS in UTF-16 units)."""
_REPR_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")
_FILENAME_STAR = re.compile(r"filename\*=UTF-8''([^;]+)", re.IGNORECASE)


def _nanoseconds(value: Time) -> int:
    """Nanoseconds since the epoch; ``QueryError`` (``invalid_time``) for a malformed string."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(0, "invalid_time", f"{value!r} is not an ISO 8601 time") from None
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _wire_time(value: Time) -> str | int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    return value


class Client:
    def __init__(self, url: str, api_key: str, timeout_s: float = 60) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def request(
        self,
        sql: str,
        begin: Time | None = None,
        end: Time | None = None,
        *,
        format: str = "json",
        engine: str | None = None,
        max_rows: int | None = None,
        dry_run: bool = False,
    ) -> Answer:
        """POST /v1/query and the answer's bytes; ``QueryError`` for any refusal or failure.
        ``end`` defaults to now, ``begin`` to ``DEFAULT_SPAN`` before ``end``."""
        now = time.time_ns()
        if begin is None:
            begin = (now if end is None else _nanoseconds(end)) - int(
                DEFAULT_SPAN.total_seconds() * 1e9
            )
        document: dict[str, object] = {
            "sql": sql,
            "begin": _wire_time(begin),
            "end": _wire_time(now if end is None else end),
            "format": format,
        }
        if engine is not None:
            document["engine"] = engine
        if max_rows is not None:
            document["max_rows"] = max_rows
        if dry_run:
            document["dry_run"] = True
        request = urllib.request.Request(
            self.url + "/v1/query",
            data=json.dumps(document).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.api_key}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Answer(
                    response.read(),
                    response.headers.get("Content-Type", ""),
                    response.headers.get(TRUNCATED_HEADER),
                )
        except urllib.error.HTTPError as error:
            raise _refusal(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise QueryError(0, "unreachable", f"cannot reach {self.url}: {reason}") from None
        except ValueError as error:  # not a URL urllib can open
            raise QueryError(0, "invalid_url", f"cannot query {self.url}: {error}") from None

    def query(
        self,
        sql: str,
        begin: Time | None = None,
        end: Time | None = None,
        *,
        engine: str | None = None,
        max_rows: int | None = None,
        on_truncated: str = "warn",
    ) -> pa.Table:
        """The answer as an Arrow table; ``QueryError`` when the query is refused or fails.
        When a limit cut rows (its schema metadata holds ``blocklake.truncated_by``),
        ``on_truncated`` says what happens: ``"warn"`` (a ``TruncatedWarning``), ``"raise"``
        (``QueryError`` with code ``truncated``) or ``"ignore"``."""
        if on_truncated not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_truncated={on_truncated!r}: expected warn, raise or ignore")
        answer = self.request(sql, begin, end, format="arrow", engine=engine, max_rows=max_rows)
        table = pa.ipc.open_stream(answer.body).read_all()
        if answer.truncated_by and on_truncated != "ignore":
            message = (
                f"the answer holds its first {table.num_rows} rows only: the "
                f"{answer.truncated_by} limit cut the rest (aggregate more, narrow the range, "
                "or ask for fewer columns)"
            )
            if on_truncated == "raise":
                raise QueryError(200, "truncated", message)
            warnings.warn(message, TruncatedWarning, stacklevel=2)
        return table

    def dry_run(
        self, sql: str, begin: Time | None = None, end: Time | None = None, **options: object
    ) -> dict:
        """What the query would read and cost, without running it (the service's JSON)."""
        answer = self.request(sql, begin, end, dry_run=True, **options)  # type: ignore[arg-type]
        return json.loads(answer.body)

    def download_attachment(
        self,
        attachment_id: str,
        destination: str | os.PathLike,
        *,
        overwrite: bool | None = None,
    ) -> Download:
        """GET /v1/attachments/<id> (the ``link`` column of ``attachments``) into
        ``destination``, a file, or a directory where the attachment's own name is used.
        Streamed (never held whole), checked against the size and SHA-256 the API states,
        written under a temporary name and renamed only when complete. A redirect (a deployed
        lake answers a presigned S3 URL) is followed without the API key. ``QueryError`` when
        refused (404 ``unknown_attachment``: no such id in this tenant), unreachable, or when
        the bytes do not match (``download_corrupt``). ``overwrite``: replace an existing file;
        by default a file ``destination`` names is replaced, but never one named by the
        attachment's own name in a directory (the uploader chose it: ``file_exists``)."""
        link = f"{self.url}/v1/attachments/{urllib.parse.quote(attachment_id, safe='')}"
        request = urllib.request.Request(link, headers={"Authorization": f"Bearer {self.api_key}"})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            try:
                response = opener.open(request, timeout=self.timeout_s)
                digest = response.headers.get("Repr-Digest")
            except urllib.error.HTTPError as error:
                if error.code not in (301, 302, 303, 307, 308) or not error.headers["Location"]:
                    raise
                digest = error.headers.get("Repr-Digest")
                error.close()
                response = urllib.request.urlopen(error.headers["Location"], timeout=self.timeout_s)
            with response:
                return _save(response, destination, digest, overwrite)
        except urllib.error.HTTPError as error:
            raise _refusal(error) from None
        except (urllib.error.URLError, OSError) as error:
            if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
                raise QueryError(0, "cannot_write", f"{destination}: {error.strerror}") from None
            reason = getattr(error, "reason", error)
            raise QueryError(0, "unreachable", f"cannot reach {self.url}: {reason}") from None


def _save(
    response: object,
    destination: str | os.PathLike,
    digest_header: str | None,
    overwrite: bool | None = None,
) -> Download:
    headers = response.headers  # type: ignore[attr-defined]
    name = _filename(headers.get("Content-Disposition", ""))
    path = Path(destination)
    if path.is_dir():
        path = path / name
        overwrite = bool(overwrite)  # a name the uploader chose: never replaces by default
    elif overwrite is None:
        overwrite = True
    if not overwrite and os.path.lexists(path):
        raise QueryError(
            0, "file_exists", f"{path} exists: not replaced (--force replaces it, -o names another)"
        )
    expected_size = headers.get("Content-Length")
    digest = hashlib.sha256()
    size = 0
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".blocklake-", suffix=".part")
    except OSError as error:  # a local failure, not the network's
        raise QueryError(0, "cannot_write", f"{path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            while chunk := response.read(_DOWNLOAD_CHUNK):  # type: ignore[attr-defined]
                digest.update(chunk)
                try:
                    file.write(chunk)
                except OSError as error:
                    raise QueryError(0, "cannot_write", f"{path}: {error.strerror}") from None
                size += len(chunk)
        stated = _REPR_DIGEST.fullmatch((digest_header or "").strip())
        if expected_size is None or not expected_size.isdigit() or stated is None:
            raise QueryError(
                0,
                "download_corrupt",
                "the answer states no Content-Length or no SHA-256 (Repr-Digest) to check "
                "the bytes against: not saved",
            )
        if int(expected_size) != size:
            raise QueryError(
                0, "download_corrupt", f"received {size} of {expected_size} bytes: try again"
            )
        if base64.b64decode(stated[1]) != digest.digest():
            raise QueryError(0, "download_corrupt", "the bytes received are not the ones stored")
        try:
            if overwrite:
                os.replace(temp, path)
            else:  # fails if the file appeared meanwhile: never replaced
                os.link(temp, path)
                os.unlink(temp)
        except FileExistsError:
            raise QueryError(0, "file_exists", f"{path} exists: not replaced") from None
        except OSError as error:
            raise QueryError(0, "cannot_write", f"{path}: {error.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return Download(
        path,
        name,
        headers.get("Content-Type", "application/octet-stream"),
        size,
        digest.hexdigest(),
    )


def _filename(disposition: str) -> str:
    """The attachment's own name from ``Content-Disposition``, as a plain file name: no
    directory, no leading dot, every control character (C0, DEL, C1) and other unprintable
    one replaced by ``_``, at most ``MAX_FILENAME_BYTES`` of UTF-8 (cut before the
    extension, which is kept); ``attachment`` when there is none."""
    match = _FILENAME_STAR.search(disposition)
    name = urllib.parse.unquote(match[1].strip(), errors="replace") if match else ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if c.isprintable() else "_" for c in name).strip().lstrip(".")
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        extension = extension if dot and 0 < len(extension.encode()) <= 16 else ""
        room = MAX_FILENAME_BYTES - len(extension.encode()) - (1 if extension else 0)
        stem = (stem if extension else name).encode()[:room].decode("utf-8", "ignore")
        name = f"{stem}.{extension}" if extension else stem
    return name or "attachment"


def _refusal(error: urllib.error.HTTPError) -> QueryError:
    body = error.read().decode("utf-8", "replace")
    try:
        detail = json.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):  # not our API: its status line, one line
        code, message = "http_error", f"{error.reason} (is {error.url} a blocklake API?)"
    if error.code in (401, 403):
        message += " (check the API key: --api-key or BLOCKLAKE_API_KEY)"
    return QueryError(error.code, code, f"{error.code} {code}: {message}")


def connect(url: str, api_key: str, timeout_s: float = 60) -> Client:
    """A client of the query API at ``url`` (``http://127.0.0.1:8787`` locally)."""
    return Client(url, api_key, timeout_s)
