"""ETL Lambda: S3 ObjectCreated notifications of raw blocks, delivered through SQS, and the
hourly ``{"action": "compact"}`` of the schedule.

Each SQS message is handled on its own and failures are reported per message, so one bad
block is retried (and after the queue's receive limit, moved to the dead-letter queue) without
retrying the good ones.

Metrics (namespace ``blocklake``, off when not on Lambda: ``blocklake.observability``):
``BlocksConverted``, ``RowsWritten``, ``ConversionFailures``; compaction:
``PartitionsCompacted``, ``FragmentsCompacted``.
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
from blocklake.etl.compact import Compactor
from blocklake.etl.convert import BlockConverter
from blocklake.observability import MetricsSink, MetricUnit, metrics_for, observed, tracer_for
from blocklake.stores import factory

SERVICE = "blocklake-etl"
logger = Logger(service=SERVICE)
metrics = metrics_for(SERVICE)
tracer = tracer_for(SERVICE)


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
    processor = BatchProcessor(event_type=EventType.SQS)

    def convert_message(record: SQSRecord) -> None:
        for key in created_keys(record.body):
            try:
                with tracer.subsegment("convert_key"):
                    conversion = converter.convert_key(key)
            except Exception:
                metrics.add_metric("ConversionFailures", MetricUnit.Count, 1)
                logger.exception("block not converted", extra={"key": key})
                raise
            metrics.add_metric("BlocksConverted", MetricUnit.Count, 1)
            metrics.add_metric("RowsWritten", MetricUnit.Count, sum(conversion.rows.values()))
            logger.info("block converted", extra={"key": key, "rows": conversion.rows})

    compactor = Compactor(converter.blobs)

    def scheduled(action: str) -> dict:
        if action != "compact":
            raise ValueError(f"unknown scheduled action {action!r}: expected 'compact'")
        with tracer.subsegment("compact"):
            report = compactor.compact_closed_hours(time.time_ns())
        metrics.add_metric("PartitionsCompacted", MetricUnit.Count, report.partitions)
        metrics.add_metric("FragmentsCompacted", MetricUnit.Count, report.fragments)
        metrics.add_metric("ReplacedFilesDeleted", MetricUnit.Count, report.deleted)
        logger.info(
            "compaction done",
            extra={
                "partitions": report.partitions,
                "fragments": report.fragments,
                "deleted": report.deleted,
            },
        )
        return {
            "partitions": report.partitions,
            "fragments": report.fragments,
            "deleted": report.deleted,
        }

    def handle(event: dict, context: object) -> dict:
        if "action" in event:  # the EventBridge schedule's constant input
            return scheduled(event["action"])
        return process_partial_response(event, convert_message, processor, context)

    return observed(handle, logger, metrics, tracer)


@functools.cache
def _configured() -> Callable[[dict, object], dict]:
    settings = Settings.from_env()
    return make_handler(
        BlockConverter(factory.blob_store(settings), factory.metadata_store(settings))
    )


def handler(event: dict, context: object) -> dict:
    """The Lambda entry point, configured from the environment at the first call."""
    return _configured()(event, context)
