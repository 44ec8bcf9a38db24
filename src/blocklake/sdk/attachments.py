"""Attachments: ``attach(name, data)`` sends a large binary (a crash dump, an image, a video)
beside the blocks, and records an ``attachment`` event once it is stored.

``attach`` never waits on the network: it checks its arguments, queues the attachment and
returns its id. A thread of its own (``blocklake-attachments``; a video must not hold up the
blocks behind it) hashes it (SHA-256, streamed: a file is read in 1 MiB chunks, twice, never
held whole), declares it (``POST /v1/attachments``, idempotent: the id is chosen here) and
uploads it to the URL the server answers: a presigned S3 PUT (sent without the API key, which
never leaves for another origin) or the server's own (sent with it). Failures are classified as
the blocks' are (``sdk/transport.py``): transient ones retried with backoff for ``retry_for``
seconds, permanent ones (4xx) give the attachment up, counted in ``stats()["attachments"]``; an
expired presigned URL (403) is declared again for a fresh one. Only then, uploaded, does its
event go into a block (stream tag ``attachments``), so a query never links to bytes that do not
exist.

Memory: a ``bytes`` attachment counts against ``max_memory`` until it is uploaded (one that
would not fit is dropped, counted ``memory_full``); a file counts nothing, it stays on disk.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import mimetypes
import os
import random
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from blocklake.format.media_type import valid_content_type
from blocklake.sdk import recording, registration
from blocklake.sdk.recording import Buffer
from blocklake.sdk.repair import Repairs
from blocklake.sdk.streams import Block, StreamWriter
from blocklake.sdk.transport import (
    TRANSIENT_STATUS,
    DeliveryError,
    Transport,
    retry_after_seconds,
)

_log = logging.getLogger("blocklake.sdk")

CHUNK_BYTES = 1024 * 1024
"""Bytes read, hashed and sent at a time."""
MAX_NAME_CHARS = 1024
"""The server's limit on a name; a longer one is cut (its end kept: the file's extension)."""
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_RENEWALS = 2
"""Fresh upload URLs asked for after a 403 (an expired presigned URL) before giving up."""
MAX_BLOCK_SPAN_TICKS = 50 * 60 * recording.TICK_FREQUENCY
"""A block covers at most an hour (the server's rule); attachments uploaded slowly, out of the
order they were attached, are cut into blocks spanning at most 50 minutes."""
DROP_REASONS = (
    "bad_value",
    "memory_full",
    "unreadable",
    "refused",
    "retries_exhausted",
    "abandoned_at_exit",
    "after_shutdown",
)
"""Why attachments were given up: ``data`` was neither bytes nor a path (an int, a list...); a
``bytes`` one did not fit the memory budget; its file could
not be read; the server refused it (a 4xx: too large, say); retries went on longer than
``retry_for``; the process exited before it was uploaded; it was attached after ``shutdown``."""

events = Buffer()
"""(ticks, attachment id, name, content type, size, sha256 hex, attributes or None) of uploaded
attachments, drained by the flusher like the other buffers."""


def writer(properties: dict[str, str]) -> AttachmentWriter:
    return AttachmentWriter(("attachments",), ("attachment",), properties)


@dataclass
class AttachmentWriter(StreamWriter):
    """Blocks of attachment events, each spanning at most ``MAX_BLOCK_SPAN_TICKS``."""

    def blocks(self, events: list[tuple], limit: int) -> tuple[list[Block], Repairs]:
        events.sort(key=itemgetter(0))
        repairs = Repairs()
        blocks: list[Block] = []
        start = 0
        for index in range(1, len(events) + 1):
            if index == len(events) or events[index][0] - events[start][0] > MAX_BLOCK_SPAN_TICKS:
                made, repaired = super().blocks(events[start:index], limit)
                blocks.extend(made)
                repairs.coerced += repaired.coerced
                repairs.dropped += repaired.dropped
                repairs.truncated += repaired.truncated
                start = index
        return blocks, repairs


@dataclass
class Counters:
    attached: int = 0
    """Calls of ``attach``."""
    uploaded: int = 0
    bytes_uploaded: int = 0
    retries: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    reported: int = 0
    """Drops already answered by ``flush()`` (False once for them)."""

    def drop(self, reason: str) -> None:
        with self.lock:
            self.dropped[reason] += 1

    def new_drops(self) -> int:
        """Drops since the previous call (``flush()`` is False when there are any)."""
        with self.lock:
            total = sum(self.dropped.values())
            new, self.reported = total - self.reported, total
            return new

    def snapshot(self, pending: int) -> dict:
        """``attached == uploaded + sum(dropped) + pending``."""
        with self.lock:
            return {
                "attached": self.attached,
                "uploaded": self.uploaded,
                "pending": pending,
                "dropped": dict(self.dropped),
                "bytes_uploaded": self.bytes_uploaded,
                "retries": self.retries,
            }


@dataclass
class Pending:
    attachment_id: str
    name: str
    content_type: str | None
    """None: guessed from the name by the uploader (the first guess loads the system's
    types, tens of milliseconds the caller of ``attach`` must not wait)."""
    attributes: dict[str, str] | None
    ticks: int
    data: bytes | None = None
    path: Path | None = None
    created: float = field(default_factory=time.monotonic)
    serial: int = 0
    size: int = 0
    sha256: str | None = None

    @property
    def held_bytes(self) -> int:
        return len(self.data) if self.data is not None else 0


class _SourceChanged(Exception):
    """The file changed under the upload (shorter, unreadable): hash it again."""


class AttachmentUploader:
    """The thread that uploads attachments, one at a time, oldest first."""

    def __init__(
        self,
        transport: Transport,
        counters: Counters,
        *,
        retry_for: float = 300.0,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.transport = transport
        self.counters = counters
        self.retry_for = retry_for
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.queue: deque[Pending] = deque()
        self.current: Pending | None = None
        self._serial = 0
        self._stopping = False
        self._abandoned = False
        self._deadline = float("inf")
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="blocklake-attachments", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # --- called by users' threads -----------------------------------------------------

    def put(self, item: Pending) -> None:
        with self._changed:
            self._serial += 1
            item.serial = self._serial
            self.queue.append(item)
            self._changed.notify_all()

    def held_bytes(self) -> int:
        """Bytes of ``bytes`` attachments not yet uploaded nor given up."""
        with self._changed:
            current = self.current.held_bytes if self.current is not None else 0
            return current + sum(item.held_bytes for item in self.queue)

    def pending(self) -> int:
        with self._changed:
            return len(self.queue) + (self.current is not None)

    @property
    def last_serial(self) -> int:
        return self._serial

    def wait_settled(self, serial: int, deadline: float) -> bool:
        """Waits until every attachment up to ``serial`` is uploaded or given up."""

        def settled() -> bool:
            serials = [item.serial for item in self.queue]
            if self.current is not None:
                serials.append(self.current.serial)
            return not serials or min(serials) > serial

        with self._changed:
            return self._changed.wait_for(settled, max(0.0, deadline - time.monotonic()))

    def stop(self, deadline: float) -> int:
        """Uploads what is queued until ``deadline`` (``time.monotonic``), then gives the rest
        up (an upload under way included: its event is not recorded); returns how many were
        given up ``abandoned_at_exit`` (a retry cut short by the deadline included)."""
        with self.counters.lock:
            before = self.counters.dropped["abandoned_at_exit"]
        with self._changed:
            self._stopping = True
            self._deadline = deadline
            self._changed.notify_all()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._changed:
            self._abandoned = True
            left = list(self.queue) + ([self.current] if self.current is not None else [])
            self.queue.clear()
            self.current = None
            with self.counters.lock:
                self.counters.dropped["abandoned_at_exit"] += len(left)
                abandoned = self.counters.dropped["abandoned_at_exit"] - before
            self._changed.notify_all()
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(0.2)  # told to stop at the deadline, as the join above timed out
        if abandoned:
            _log.warning("blocklake: %d attachments abandoned at exit", abandoned)
        return abandoned

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.queue or self._stopping)
                if not self.queue or self._abandoned:
                    return
                item = self.current = self.queue.popleft()
            try:
                dropped = self._deliver(item)
            except Exception:  # the thread must outlive any bug: log it, give this one up
                _log.exception("blocklake: attachment upload failed")
                dropped = "refused"
            self._settle(item, dropped)

    def _settle(self, item: Pending, dropped: str | None) -> None:
        with self._changed:
            if self._abandoned:  # stop() counted it already
                return
            if dropped is None:
                events.append(
                    (
                        item.ticks,
                        item.attachment_id,
                        item.name,
                        item.content_type,
                        item.size,
                        item.sha256,
                        item.attributes,
                    )
                )
                with self.counters.lock:
                    self.counters.uploaded += 1
                    self.counters.bytes_uploaded += item.size
            else:
                self.counters.drop(dropped)
            item.data = None
            self.current = None
            self._changed.notify_all()

    def _deliver(self, item: Pending) -> str | None:
        """None once uploaded, else the reason it was given up (or ``abandoned_at_exit``)."""
        renewals = 0
        pause = self.backoff
        while True:
            try:
                if item.content_type is None:
                    guessed, _ = mimetypes.guess_type(item.name)
                    item.content_type = guessed or DEFAULT_CONTENT_TYPE
                if item.sha256 is None:
                    item.size, item.sha256 = _digest(item)
                answer = self.transport.post_json("/v1/attachments", _declaration(item))
                if answer.get("status") != "uploaded":
                    self._put(answer.get("upload"), item)
                return None
            except OSError as error:  # reading the file, not the network (DeliveryError is not)
                _log.error("blocklake: attachment %r unreadable: %s", item.name, error)
                return "unreadable"
            except _SourceChanged as error:
                self._renew(item, str(error))  # hash it again, under a new id; retried below
                failure = DeliveryError(str(error), kind="transient")
            except DeliveryError as error:
                failure = error
                if failure.kind != "transient" and self._changed_since_hashed(item):
                    # rewritten at the same size (checksum mismatch), or a 409 for the id
                    self._renew(item, f"{item.path} changed while it was uploaded")
                    failure = DeliveryError(str(error), kind="transient")
            if failure.status == 403 and renewals < MAX_RENEWALS:
                renewals += 1  # a presigned URL expired (or the clock is off): ask for another
                continue
            if failure.kind != "transient":
                _log.error("blocklake: attachment %r refused: %s", item.name, failure)
                return "refused"
            if time.monotonic() - item.created > self.retry_for:
                _log.error("blocklake: attachment %r given up: %s", item.name, failure)
                return "retries_exhausted"
            with self.counters.lock:
                self.counters.retries += 1
            wait = failure.retry_after if failure.retry_after is not None else pause
            pause = min(pause * 2, self.max_backoff)
            if not self._sleep(min(wait * random.uniform(0.5, 1.0), 60.0)):
                return "abandoned_at_exit"

    @staticmethod
    def _changed_since_hashed(item: Pending) -> bool:
        """A file whose size or SHA-256 is no longer the declared one (read again: only after a
        refusal, which is rare)."""
        if item.path is None or item.sha256 is None:
            return False
        try:
            return _digest(item) != (item.size, item.sha256)
        except OSError:
            return False  # unreadable now: the next attempt says so

    @staticmethod
    def _renew(item: Pending, why: str) -> None:
        """The file changed: its declaration (size, SHA-256) is fixed on the server, so the
        bytes now there go under a new id, hashed again. The id ``attach`` returned is kept in
        the attributes (``blocklake.attach_id``)."""
        first = (item.attributes or {}).get("blocklake.attach_id", item.attachment_id)
        item.attributes = {**(item.attributes or {}), "blocklake.attach_id": first}
        new_id = str(uuid.uuid4())
        _log.warning(
            "blocklake: attachment %r (%s): %s: sent again as %s", item.name, first, why, new_id
        )
        item.attachment_id, item.sha256 = new_id, None

    def _sleep(self, seconds: float) -> bool:
        """Waits ``seconds``; False if shutdown's deadline comes first."""
        end = time.monotonic() + seconds
        with self._changed:
            while (now := time.monotonic()) < min(end, self._deadline):
                # the deadline is read again at each wake-up: shutdown sets it (and notifies)
                # while the thread sleeps, and it may come before ``end``
                self._changed.wait(min(end, self._deadline) - now)
            return time.monotonic() < self._deadline

    def _put(self, upload: object, item: Pending) -> None:
        """Sends the bytes as the server's answer says: its own URL (relative) with the API
        key, a presigned one without."""
        if not isinstance(upload, dict) or not isinstance(upload.get("url"), str):
            raise DeliveryError("the server answered no upload URL", kind="permanent")
        url: str = upload["url"]
        headers = {str(k): str(v) for k, v in (upload.get("headers") or {}).items()}
        if url.startswith("/"):
            url = self.transport.endpoint.rstrip("/") + url
            headers["Authorization"] = f"Bearer {self.transport.api_key}"
        headers["Content-Length"] = str(item.size)
        put(url, headers, _chunks(item), self.transport.timeout)


def put(url: str, headers: dict[str, str], chunks: Iterator[bytes], timeout: float) -> None:
    """One streamed PUT. A server may answer before the whole body is sent (a refusal) and
    close: its answer is still read and classified. ``DeliveryError`` unless 2xx."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DeliveryError(f"upload URL {url[:100]!r} is not HTTP", kind="permanent")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=timeout, blocksize=CHUNK_BYTES)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            connection.putrequest("PUT", target, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            for chunk in chunks:
                connection.send(chunk)
        except _SourceChanged:
            raise
        except OSError:
            pass  # maybe refused mid-body: the answer, if any, says (else getresponse raises)
        response = connection.getresponse()
        status, body = response.status, response.read(64 * 1024)
        retry_after = retry_after_seconds(response.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryError(f"PUT {parts.netloc}{parts.path}: {error}", kind="transient") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return
    transient = status in TRANSIENT_STATUS or status >= 500
    raise DeliveryError(
        f"PUT {parts.netloc}{parts.path}: {status} {body[:300].decode('utf-8', 'replace')}",
        kind="transient" if transient else "permanent",
        status=status,
        retry_after=retry_after,
    )


def _digest(item: Pending) -> tuple[int, str]:
    """Size and SHA-256 hex of the attachment's bytes (a file streamed, never read whole)."""
    if item.data is not None:
        return len(item.data), hashlib.sha256(item.data).hexdigest()
    assert item.path is not None
    digest, size = hashlib.sha256(), 0
    with item.path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _chunks(item: Pending) -> Iterator[bytes]:
    """The bytes to send, ``item.size`` of them exactly: a file that grew is cut there (the
    checksum tells whether what was sent is what was hashed), one that shrank or vanished
    raises ``_SourceChanged``."""
    if item.data is not None:
        view = memoryview(item.data)
        for start in range(0, len(view), CHUNK_BYTES):
            yield view[start : start + CHUNK_BYTES]
        return
    assert item.path is not None
    left = item.size
    try:
        with item.path.open("rb") as file:
            while left > 0:
                chunk = file.read(min(left, CHUNK_BYTES))
                if not chunk:
                    raise _SourceChanged(f"{item.path} is shorter than when it was hashed")
                left -= len(chunk)
                yield chunk
    except OSError as error:
        raise _SourceChanged(f"{item.path}: {error}") from None


def _declaration(item: Pending) -> dict:
    return {
        "attachment_id": item.attachment_id,
        "name": item.name,
        "content_type": item.content_type,
        "size": item.size,
        "sha256": item.sha256,
    }


# --- the module's state, set by sdk.init ---------------------------------------------------

_uploader: AttachmentUploader | None = None
_counters = Counters()
_early: deque[Pending] = deque()
"""Attachments made before ``init``: its uploader sends them."""
_max_memory = recording.DEFAULT_MEMORY_BYTES
_blocks_bytes: Callable[[], int] = lambda: 0  # noqa: E731
_closed = False
_admission = threading.Lock()
"""Held from the memory check of a ``bytes`` attachment to its enqueueing: concurrent calls
cannot each see the same room and together exceed ``max_memory``."""


def start(
    transport: Transport, *, retry_for: float, max_memory: int, blocks_bytes: Callable[[], int]
) -> AttachmentUploader:
    """``sdk.init``: a new uploader (and counters) for this process; ``blocks_bytes`` tells
    the bytes of blocks waiting, which share ``max_memory`` with ``bytes`` attachments."""
    global _uploader, _counters, _max_memory, _blocks_bytes, _closed
    early = list(_early)
    _early.clear()
    _counters = Counters(attached=len(early))
    _uploader = AttachmentUploader(transport, _counters, retry_for=retry_for)
    _max_memory, _blocks_bytes, _closed = max_memory, blocks_bytes, False
    for item in early:
        _uploader.put(item)
    _uploader.start()
    return _uploader


def stop(deadline: float) -> int:
    """``sdk.shutdown``: uploads until ``deadline``; later ``attach`` calls are counted
    ``after_shutdown``. Returns the attachments abandoned."""
    global _closed
    _closed = True
    return _uploader.stop(deadline) if _uploader is not None else 0


def held_bytes() -> int:
    uploader = _uploader
    held = sum(item.held_bytes for item in _early)
    return held + (uploader.held_bytes() if uploader is not None else 0)


def stats() -> dict:
    """``{"attached", "uploaded", "pending", "dropped": {reason: n}, "bytes_uploaded",
    "retries"}`` in attachments (bytes where named); ``attached == uploaded + sum(dropped) +
    pending``."""
    uploader = _uploader
    pending = len(_early) + (uploader.pending() if uploader is not None else 0)
    return _counters.snapshot(pending)


def new_drops() -> int:
    """Attachments given up since the previous call (``sdk.flush``)."""
    return _counters.new_drops()


def wait_settled(deadline: float) -> bool:
    """Every attachment made so far is uploaded or given up (by ``deadline``)."""
    uploader = _uploader
    return uploader is None or uploader.wait_settled(uploader.last_serial, deadline)


def _reset_in_child() -> None:
    """A forked child: the parent's attachments are the parent's to send."""
    global _uploader, _counters
    del events[:]
    events.drops = recording.DropCounter()
    events.stream = None
    _early.clear()
    _uploader, _counters = None, Counters()


os.register_at_fork(after_in_child=_reset_in_child)


def attach(
    name: object,
    data: bytes | bytearray | memoryview | str | os.PathLike,
    content_type: str | None = None,
    attributes: object = None,
) -> str | None:
    """Uploads ``data`` (bytes, or the path of a file: streamed from disk, never held in
    memory) in the background and records an ``attachment`` event once it is stored; returns
    its id (the ``attachment_id`` column; download it with ``blocklake attachments get ID``),
    or None when it is given up at once (counted in ``stats()["attachments"]["dropped"]``: a
    file that cannot be read, ``bytes`` over the memory budget, after ``shutdown``).

    ``name`` is a label (a file name, say; a path's name by default); ``content_type`` a media
    type (default: guessed from the name, else ``application/octet-stream``); ``attributes`` a
    mapping of text, as properties are. Never raises for a value, never waits on the network.
    """
    with _counters.lock:
        _counters.attached += 1
    if _closed:
        _counters.drop("after_shutdown")
        return None
    path: Path | None = None
    payload: bytes | None = None
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if name is None:
            name = path.name
        if not path.is_file() or not os.access(path, os.R_OK):
            _log.error("blocklake: attach(%r): %s is not a readable file", name, path)
            _counters.drop("unreadable")
            return None
    elif isinstance(data, bytes | bytearray | memoryview):
        try:
            payload = data if isinstance(data, bytes) else bytes(data)
        except (TypeError, ValueError, BufferError) as error:  # a released memoryview
            _log.error("blocklake: attach(%r): data cannot be read: %s", name, error)
            _counters.drop("bad_value")
            return None
    else:  # bytes(12345) would be 12,345 zero bytes, bytes([1, 2]) two bytes: neither meant
        _log.error(
            "blocklake: attach(%r): data is %s, not bytes, bytearray, memoryview or a path: "
            "dropped",
            name,
            type(data).__name__,
        )
        _counters.drop("bad_value")
        return None
    label = registration.text(name if name is not None else "attachment")[-MAX_NAME_CHARS:]
    item = Pending(
        attachment_id=str(uuid.uuid4()),
        name=label or "attachment",
        content_type=_content_type(content_type),
        attributes=registration.properties(attributes) or None,
        ticks=recording.now(),
        data=payload,
        path=path,
    )
    with _admission:
        if payload is not None:
            room = _max_memory - _blocks_bytes() - recording._overflow_bytes - held_bytes()
            if len(payload) > room:
                _log.warning(
                    "blocklake: attach(%r): %d bytes do not fit the memory budget (max_memory): "
                    "dropped; attach a file path to send large data",
                    name,
                    len(payload),
                )
                _counters.drop("memory_full")
                return None
        uploader = _uploader
        if uploader is None:
            _early.append(item)
        else:
            uploader.put(item)
    return item.attachment_id


def _content_type(given: object) -> str | None:
    if given is None:
        return None  # guessed by the uploader
    text = given.strip(" \t") if isinstance(given, str) else given
    if valid_content_type(text):
        return text  # type: ignore[return-value]
    _log.warning(
        "blocklake: attach: content_type %r is not a media type such as image/png: sent as %s",
        given,
        DEFAULT_CONTENT_TYPE,
    )
    return DEFAULT_CONTENT_TYPE
