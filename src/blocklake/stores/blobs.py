"""BlobStore port and its local-directory adapter (the embedded default)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobNotFound(KeyError):
    """The object does not exist."""


class BlobStore(Protocol):
    """Where raw blocks and Parquet files live: a local directory or an S3 bucket."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Stores ``data`` unless ``key`` exists; True if this call created it. Never overwrites."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Stores ``data``, replacing what was there (for derived files written idempotently)."""
        ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start``: fewer at the end, none past it (a block's
        header, or a Parquet footer, without fetching the whole object)."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, keys: list[str]) -> None:
        """Removes the objects; a key already gone is no error."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in lexical order."""
        ...

    def list_folders(self, prefix: str) -> list[str]:
        """The "folders" right under ``prefix`` (which ends with ``/``), each ending with ``/``:
        one cheap request however many objects lie below."""
        ...

    def url(self, key: str) -> str:
        """A location a query engine can read (a file path or an ``s3://`` URL)."""
        ...


class LocalBlobStore:
    """A directory tree; writes are atomic (temporary file, then link or rename)."""

    def __init__(self, root: str | os.PathLike, on_created: Callable[[str], None] | None = None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._on_created = on_created
        """Called with the key of each object this store creates, as S3 notifications are sent."""

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or key.endswith("/"):
            raise ValueError(f"invalid object key {key!r}")
        return path

    def _write_temp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        return temp

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        temp = self._write_temp(path, data)
        try:
            os.link(temp, path)  # atomic, and fails if the key exists: no second copy, ever
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
        self._created(key)
        return True

    def write_if_absent(self, key: str, write: Callable[[BinaryIO], None]) -> bool:
        """Calls ``write`` with a new temporary file beside ``key``'s, then links it in place
        unless the key exists (True if this call created it): an upload streams to disk and
        appears whole or not at all. If ``write`` raises, nothing is stored."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                write(file)
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
        self._created(key)
        return True

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.replace(self._write_temp(path, data), path)
        self._created(key)

    def _created(self, key: str) -> None:
        if self._on_created is not None:
            self._on_created(key)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"invalid range start={start} length={length}")
        try:
            with self._path(key).open("rb") as file:
                file.seek(start)
                return file.read(length)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def list_folders(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(f"{prefix}{path.name}/" for path in base.iterdir() if path.is_dir())

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return
        keys = (
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )
        yield from sorted(key for key in keys if key.startswith(prefix))

    def url(self, key: str) -> str:
        return str(self.root / key)
