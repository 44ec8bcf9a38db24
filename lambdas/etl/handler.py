"""ETL Lambda: S3 ObjectCreated notifications of raw blocks, delivered through SQS (conversion
stages rows, ``blocklake.etl.convert``), and the schedules' ``{"action": "commit"}`` (each
minute, on the committer function, the tables' single writer: folds staged rows into the
Iceberg tables for most of the minute, and once an hour first compacts, expires snapshots and
removes orphans; ``{"action": "compact"}`` does that alone) and ``{"action": "reconcile"}``.

Each SQS message is handled on its own and failures are reported per message, so one bad
block is retried (and after the queue's receive limit, moved to the dead-letter queue) without
retrying the good ones; a batch whose every message failed is reported the same way rather
than raised. A failed conversion is also recorded, with its reason, where its tenant can see it
(``blocklake.etl.convert``).

Metrics (namespace ``blocklake``, off when not on Lambda: ``blocklake.observability``):
``BlocksConverted``, ``RowsWritten``, ``ConversionFailures``; commits: ``FragmentsCommitted``,
``LakeCommits``; compaction: ``PartitionsCompacted``, ``FilesCompacted``, ``SnapshotsExpired``,
``OrphansRemoved``; reconciliation: ``BlocksReconciled``,
``BlocksUnrecoverable`` (reported by the reconciler, see ``blocklake.etl.reconcile``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter, ConversionFailed
from blocklake.etl.reconcile import Reconciler, ReconcileReport
from blocklake.ingest.service import IngestService
from blocklake.lake import CommitReport
from blocklake.lake.catalog import open_lake
from blocklake.lake.turns import Turns
from blocklake.observability import MetricsSink, MetricUnit, metrics_for, observed, tracer_for
from blocklake.stores import factory
from blocklake.stores.layout import partition

SERVICE = "blocklake-etl"
logger = Logger(service=SERVICE)
metrics = metrics_for(SERVICE)
tracer = tracer_for(SERVICE)


HOUR_NS = 3600 * 1_000_000_000
HOURS_BACK = 3
"""Closed hours whose raw blocks reconciliation revisits."""
COMMIT_INTERVAL_S = 5.0
"""Time between two commits of the committer: blocks reach queries (Athena's too) this long
after they converted, plus a commit's duration (well within the minute asked)."""
COMMIT_WINDOW_S = 50.0
"""How long one committer run commits: less than the schedule's minute, so that runs follow
each other rather than wait for their turn (``blocklake.lake.turns``)."""
COMMIT_RESERVE_MS = 10_000
"""The committer stops committing when its invocation has less time left than this."""
COMPACT_MINUTE = 5
"""The committer run starting in this minute of each hour compacts the lake first (five
minutes past: the hour that just closed has its late blocks)."""
RECONCILE_SETTLE_NS = 10 * 60 * 1_000_000_000
"""Blocks inserted this recently are left to their notification, still on its way."""
RECONCILE_RESERVE_MS = 15_000
"""Reconciliation stops converting when the invocation has less time left than this."""


def created_keys(message_body: str) -> list[str]:
    """Object keys of the raw blocks an S3 notification announces (S3 sends them URL-encoded);
    the ``s3:TestEvent`` sent when notifications are configured announces none."""
    notification = json.loads(message_body)
    keys = (
        unquote_plus(record["s3"]["object"]["key"])  # unquoted first: some encode '/' too
        for record in notification.get("Records", [])
        if record.get("eventName", "").startswith("ObjectCreated:")
    )
    return [key for key in keys if key.startswith("raw/")]


def make_handler(
    converter: BlockConverter, *, metrics: MetricsSink = metrics
) -> Callable[[dict, object], dict]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def convert_message(record: SQSRecord) -> None:
        for key in created_keys(record.body):
            try:
                with tracer.subsegment("convert_key"):
                    conversion = converter.convert_recorded(key)
            except Exception:
                metrics.add_metric("ConversionFailures", MetricUnit.Count, 1)
                logger.exception("block not converted", extra={"key": key})
                raise
            metrics.add_metric("BlocksConverted", MetricUnit.Count, 1)
            metrics.add_metric("RowsWritten", MetricUnit.Count, sum(conversion.rows.values()))
            logger.info("block converted", extra={"key": key, "rows": conversion.rows})

    lake = converter.lake

    def reconcile(context: object) -> dict:
        """Blocks of the last hours left unconverted (a lost notification, a conversion that
        failed fewer than ``MAX_ATTEMPTS`` times): converted here while the invocation has time
        left. Hours without raw blocks leave the database alone, as compaction does: an idle
        lake must not wake a paused Aurora cluster every hour."""
        now = time.time_ns()
        blobs = converter.blobs
        hours = [partition(now - back * HOUR_NS) for back in range(HOURS_BACK, -1, -1)]
        raw_keys = [
            key
            for folder in blobs.list_folders("raw/")
            for hour in hours
            for key in blobs.list(f"{folder}{hour}/")
        ]
        if not raw_keys:
            return ReconcileReport().to_json()

        def convert(key: str) -> None:
            if context.get_remaining_time_in_millis() < RECONCILE_RESERVE_MS:
                return  # the next run finds it again
            try:
                converter.convert_recorded(key)
            except ConversionFailed:
                logger.exception("reconciled block not converted", extra={"key": key})

        ingest = IngestService(blobs, converter.metadata, max_block_bytes=0)  # checks only
        reconciler = Reconciler(
            blobs, converter.metadata, check=ingest.validated_block, convert=convert
        )
        with tracer.subsegment("reconcile"):
            report = reconciler.reconcile(
                raw_keys, now - (HOURS_BACK + 1) * HOUR_NS, now - RECONCILE_SETTLE_NS
            )
        metrics.add_metric("BlocksReconciled", MetricUnit.Count, len(report.converted))
        unrecoverable = len(report.refused) + len(report.missing_raw) + len(report.given_up)
        metrics.add_metric("BlocksUnrecoverable", MetricUnit.Count, unrecoverable)
        logger.info("reconciliation done", extra=report.to_json())
        return report.to_json()

    def commit(context: object) -> dict:
        """Commits what conversions staged, every ``COMMIT_INTERVAL_S`` for ``COMMIT_WINDOW_S``
        while rows keep arriving (the schedule starts one run a minute on the committer, which
        runs one at a time): a block is visible to queries seconds after it converted, within a
        minute after a quiet spell. A round that finds nothing staged ends the run, so an idle
        lake costs one short invocation a minute. The run that starts in minute
        ``COMPACT_MINUTE`` of an hour compacts first: the same single writer, so compaction
        never races a commit. Runs take turns (``blocklake.lake.turns``): one commits at a
        time, with no reserved concurrency."""
        # A run lasts at most the function's timeout, about what an invocation has left now.
        turns = Turns(converter.blobs, context.get_remaining_time_in_millis() * 1_000_000)
        turn = turns.take(time.time_ns())
        if turn is None:
            logger.info("another committer run holds the lake")
            return {"skipped": True}
        try:
            return committed(context)
        finally:
            turns.done(turn)

    def committed(context: object) -> dict:
        started = time.monotonic()
        result: dict = {}
        if time.gmtime().tm_min == COMPACT_MINUTE:
            result["compaction"] = compact()
        total = CommitReport()
        while True:
            round_started = time.monotonic()
            with tracer.subsegment("commit"):
                report = lake.commit_pending()
            total.fragments += report.fragments
            total.rows += report.rows
            total.commits += report.commits
            elapsed = time.monotonic() - started
            left_ms = context.get_remaining_time_in_millis()
            if elapsed + COMMIT_INTERVAL_S > COMMIT_WINDOW_S or left_ms < COMMIT_RESERVE_MS:
                break
            if not report.fragments:  # nothing arriving: the next minute's run looks again
                break
            time.sleep(max(0.0, COMMIT_INTERVAL_S - (time.monotonic() - round_started)))
        metrics.add_metric("FragmentsCommitted", MetricUnit.Count, total.fragments)
        metrics.add_metric("LakeCommits", MetricUnit.Count, total.commits)
        result.update(fragments=total.fragments, rows=total.rows, commits=total.commits)
        logger.info("commits done", extra=result)
        return result

    def compact() -> dict:
        with tracer.subsegment("compact"):
            lake.commit_pending()  # nothing staged waits behind compaction
            report = lake.compact(time.time_ns())
        metrics.add_metric("PartitionsCompacted", MetricUnit.Count, report.partitions)
        metrics.add_metric("FilesCompacted", MetricUnit.Count, report.files_replaced)
        metrics.add_metric("SnapshotsExpired", MetricUnit.Count, report.snapshots_expired)
        metrics.add_metric("OrphansRemoved", MetricUnit.Count, report.orphans_removed)
        result = {
            "partitions": report.partitions,
            "files_replaced": report.files_replaced,
            "snapshots_expired": report.snapshots_expired,
            "orphans_removed": report.orphans_removed,
        }
        logger.info("compaction done", extra=result)
        return result

    def scheduled(action: str, context: object) -> dict:
        if action == "reconcile":
            return reconcile(context)
        if action == "commit":
            return commit(context)
        if action == "compact":
            return compact()
        raise ValueError(
            f"unknown scheduled action {action!r}: expected 'commit', 'compact' or 'reconcile'"
        )

    def handle(event: dict, context: object) -> dict:
        if "action" in event:  # the EventBridge schedule's constant input
            return scheduled(event["action"], context)
        return process_partial_response(event, convert_message, processor, context)

    return observed(handle, logger, metrics, tracer)


@functools.cache
def _configured() -> Callable[[dict, object], dict]:
    settings = Settings.from_env()
    blobs = factory.blob_store(settings)
    return make_handler(
        BlockConverter(blobs, factory.metadata_store(settings), open_lake(settings, blobs))
    )


def handler(event: dict, context: object) -> dict:
    """The Lambda entry point, configured from the environment at the first call."""
    return _configured()(event, context)
