"""The embedded lake: the three Lambda handlers wired to local adapters, plus the S3 → SQS → ETL
path played by a worker thread that hands each new raw block to the ETL handler, and the
committer played by another that folds what conversion staged into the Iceberg tables.

The queue lives in memory: at start, the reconciler queues every block stored but not converted
(the server may have been killed between acknowledging a block and converting it).

The committer commits once conversions have been idle for ``COMMIT_IDLE_S`` (or have gone on
for ``COMMIT_MAX_WAIT_S``): a flushed log is queryable about 0.1-0.2 s after it arrived, and a
burst of blocks is one commit per table, not one per block. Between bursts it compacts, expires
snapshots and removes orphans every ``COMPACT_INTERVAL_S``. It is the tables' only writer."""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from blocklake.attachments import PATH as ATTACHMENTS_PATH
from blocklake.attachments import AttachmentService, StreamingStore
from blocklake.auth import api_key_from_headers, key_digest, tenant_for_key
from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter
from blocklake.etl.reconcile import Reconciler, ReconcileReport
from blocklake.ingest.service import IngestService
from blocklake.lake.catalog import open_lake
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.server.events import LambdaContext, http_api_event, s3_notification, sqs_event
from blocklake.stores import factory
from lambdas.etl import handler as etl_handler
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler

_log = logging.getLogger("blocklake.server")
LOCAL_BUCKET = "blocklake-local"
ROUTES = {
    ("POST", "/v1/processes"): "ingest",
    ("POST", "/v1/streams"): "ingest",
    ("POST", "/v1/blocks"): "ingest",
    ("POST", "/v1/query"): "query",
    ("POST", ATTACHMENTS_PATH): "ingest",
}
ETL_BATCH = 10
"""Messages per ETL invocation, SQS's default batch size for Lambda."""
COMMIT_IDLE_S = 0.1
"""The committer commits once no block has converted for this long."""
COMMIT_MAX_WAIT_S = 1.0
"""... or once the oldest staged block has waited this long (a steady stream of blocks)."""
COMPACT_INTERVAL_S = 300.0


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _json(status: int, document: dict) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(document).encode())


UNAUTHORIZED = _json(
    401, {"error": {"code": "unauthorized", "message": "missing or unknown API key"}}
)


class LocalLake:
    def __init__(self, settings: Settings, handler_log_level: str = "WARNING") -> None:
        self.settings = settings
        for module in (ingest_handler, etl_handler, query_handler):
            module.logger.setLevel(handler_log_level)
        self.metadata = factory.metadata_store(settings)
        self.metadata.migrate()
        self._new_blocks: queue.Queue[str | None] = queue.Queue()
        self.blobs = factory.blob_store(settings, on_created=self._on_created)
        ingest = IngestService(self.blobs, self.metadata, settings.max_block_bytes)
        self.attachments = AttachmentService(self.blobs, settings.max_attachment_bytes)
        self.lake = open_lake(settings, self.blobs)
        self.handlers = {
            "ingest": ingest_handler.make_handler(ingest, attachments=self.attachments),
            "query": query_handler.make_handler(
                DuckDbEngine.for_settings(settings, self.blobs, self.lake),
                settings.query,
                attachments=self.attachments,
            ),
        }
        self.etl = etl_handler.make_handler(BlockConverter(self.blobs, self.metadata, self.lake))
        self._staged = threading.Condition()
        self._staged_at: float | None = None
        """When the oldest block not yet committed converted (monotonic), None if none."""
        self._last_staged = 0.0
        self._closing = False
        self._commit_lock = threading.Lock()
        self.failed_commits = 0
        self._committer = threading.Thread(
            target=self._commit_loop, name="blocklake-committer", daemon=True
        )
        self._committer.start()
        self.digests = {key_digest(key): tenant for key, tenant in settings.api_keys.items()}
        self.failed_conversions = 0
        self._worker = threading.Thread(
            target=self._convert_loop, name="blocklake-etl", daemon=True
        )
        self._worker.start()
        reconciler = Reconciler(
            self.blobs, self.metadata, check=ingest.validated_block, convert=self._new_blocks.put
        )
        self.reconciled: ReconcileReport = reconciler.reconcile(
            self.blobs.list("raw/"), 0, time.time_ns() + 1
        )
        """What the reconciliation at start found and queued."""
        if self.reconciled.converted:
            _log.warning(
                "%d blocks stored but not converted (a crash?): converting them now",
                len(self.reconciled.converted),
            )

    def _on_created(self, key: str) -> None:
        if key.startswith("raw/"):
            self._new_blocks.put(key)

    def _convert_loop(self) -> None:
        while True:
            key = self._new_blocks.get()
            keys = [key]
            while len(keys) < ETL_BATCH and not self._new_blocks.empty():
                keys.append(self._new_blocks.get_nowait())
            try:
                self._convert([k for k in keys if k is not None])
            except Exception:  # the worker must outlive any block: it converts every tenant's
                self.failed_conversions += sum(key is not None for key in keys)
                _log.exception("conversion of %d blocks failed", len(keys))
            finally:
                for _ in keys:
                    self._new_blocks.task_done()
            if None in keys:
                return

    def _convert(self, keys: list[str]) -> None:
        if not keys:
            return
        event = sqs_event([s3_notification(LOCAL_BUCKET, key, 0) for key in keys])
        try:
            result = self.etl(event, LambdaContext("blocklake-etl"))
        finally:
            with self._staged:
                now = time.monotonic()
                self._staged_at = self._staged_at or now
                self._last_staged = now
                self._staged.notify()
        failures = result.get("batchItemFailures", [])
        if failures:
            self.failed_conversions += len(failures)
            _log.error("%d of %d blocks failed to convert", len(failures), len(keys))

    def tenant_of(self, headers: dict[str, str]) -> str | None:
        """The tenant of the request's API key (``headers`` named in lower case), or None."""
        return tenant_for_key(api_key_from_headers(headers), self.digests)

    @property
    def streams_attachments(self) -> bool:
        """Whether attachments go through this server (a local store) rather than S3 URLs."""
        return self.attachments.signer is None and isinstance(self.blobs, StreamingStore)

    def _commit_loop(self) -> None:
        last_compaction = time.monotonic()
        while True:
            with self._staged:
                while not self._closing and not self._due():
                    idle = time.monotonic() - last_compaction > COMPACT_INTERVAL_S
                    if idle and self._staged_at is None:
                        break
                    self._staged.wait(timeout=self._wait_s())
                if self._closing:
                    return
                compacting = self._staged_at is None
                self._staged_at = None
            try:
                with self._commit_lock:
                    self.lake.commit_pending()
                    if compacting:
                        last_compaction = time.monotonic()
                        self.lake.compact(time.time_ns())
            except Exception:  # the committer must outlive any commit: the next one retries
                self.failed_commits += 1
                _log.exception("committing staged rows failed")

    def _due(self) -> bool:
        """Whether staged rows should be committed now (called holding ``_staged``)."""
        if self._staged_at is None:
            return False
        now = time.monotonic()
        return (
            now - self._last_staged >= COMMIT_IDLE_S or now - self._staged_at >= COMMIT_MAX_WAIT_S
        )

    def _wait_s(self) -> float:
        if self._staged_at is None:
            return COMPACT_INTERVAL_S
        now = time.monotonic()
        return max(
            0.005,
            min(self._last_staged + COMMIT_IDLE_S - now, self._staged_at + COMMIT_MAX_WAIT_S - now),
        )

    def wait_converted(self) -> None:
        """Returns once every block stored so far is converted (or has failed to) and its rows
        are committed (queryable)."""
        self._new_blocks.join()
        with self._commit_lock:
            self.lake.commit_pending()

    def close(self) -> None:
        self._new_blocks.put(None)
        self._worker.join(timeout=30)
        with self._staged:
            self._closing = True
            self._staged.notify()
        self._committer.join(timeout=30)
        with self._commit_lock:  # what the last blocks staged
            self.lake.commit_pending()

    def handle_http(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        if (method, path) == ("GET", "/health"):
            return _json(200, {"status": "ok"})
        target = ROUTES.get((method, path))
        if method == "GET" and path.startswith(f"{ATTACHMENTS_PATH}/"):
            target = "query"  # a redirect to a presigned GET (a local store streams: http.py)
        if target is None:
            return _json(
                404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
            )
        lowered = {name.lower(): value for name, value in headers.items()}
        tenant = self.tenant_of(lowered)
        if tenant is None:  # what API Gateway answers when the authorizer refuses
            return UNAUTHORIZED
        event = http_api_event(
            method=method,
            path=path,
            query=query,
            headers=lowered,
            body=body,
            source_ip=source_ip,
            authorizer={"tenant": tenant},
        )
        response = self.handlers[target](event, LambdaContext(f"blocklake-{target}"))
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        return HttpResponse(response["statusCode"], dict(response.get("headers") or {}), data)
