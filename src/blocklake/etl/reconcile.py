"""The reconciler: completes blocks that were acknowledged (or stored) but never converted.

Conversion is driven by notifications (S3 → SQS, or the local server's queue in memory); a
crash between storing a block and converting it, or a notification lost, would leave it
unconverted for ever. The reconciler finds such blocks from what is stored:

- a raw object without its metadata row (stored by a version that wrote the object first, or
  copied in): checked as ingest checks an upload, given its row, then converted; one that fails
  the checks is reported and left alone;
- a metadata row without its ``blocks`` lake row (the mark conversion writes last): converted,
  unless it already failed ``MAX_ATTEMPTS`` times;
- a metadata row whose raw object is missing: reported (the client was answered before the
  object was written and never retried; nothing can be converted).

It runs when the local server starts and hourly on AWS (the ETL Lambda's ``reconcile`` action).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from blocklake.etl.convert import MAX_ATTEMPTS
from blocklake.lake.staging import mark_key
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import parse_raw_key
from blocklake.stores.metadata import MetadataStore
from blocklake.stores.models import BlockInfo

_log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """Raw object keys, by what the reconciler found and did."""

    adopted: list[str] = field(default_factory=list)
    """Raw objects given their missing metadata row."""
    converted: list[str] = field(default_factory=list)
    """Blocks handed to conversion."""
    refused: list[str] = field(default_factory=list)
    """Raw objects without metadata that fail ingest's checks: left as they are."""
    missing_raw: list[str] = field(default_factory=list)
    """Metadata rows whose raw object does not exist."""
    given_up: list[str] = field(default_factory=list)
    """Blocks that failed to convert ``MAX_ATTEMPTS`` times: see ``conversion_failures``."""

    def to_json(self) -> dict:
        return {name: len(keys) for name, keys in vars(self).items()}


def converted_mark(tenant: str, block: BlockInfo) -> str:
    """The mark of the block's ``blocks`` row, which conversion stages last."""
    return mark_key("blocks", tenant, [block.block_id])


class Reconciler:
    def __init__(
        self,
        blobs: BlobStore,
        metadata: MetadataStore,
        *,
        check: Callable[[str, bytes], BlockInfo],
        convert: Callable[[str], None],
    ) -> None:
        """``check(tenant, data)`` is ingest's validation of an upload (it raises for a block
        ingest would refuse); ``convert(key)`` converts or queues the raw block ``key``."""
        self.blobs = blobs
        self.metadata = metadata
        self.check = check
        self.convert = convert

    def reconcile(
        self, raw_keys: Iterable[str], inserted_since_ns: int, inserted_until_ns: int
    ) -> ReconcileReport:
        """Looks at the raw objects ``raw_keys`` and at the metadata rows inserted in
        [since, until); hands what needs it to ``convert``, at most once per key."""
        report = ReconcileReport()
        queued: set[str] = set()
        for key in raw_keys:
            self._raw_object(key, report, queued)
        failures = {f.object_key: f for f in self.metadata.conversion_failures()}
        for tenant, block in self.metadata.blocks_inserted_between(
            inserted_since_ns, inserted_until_ns
        ):
            key = block.object_key
            if key in queued or self.blobs.exists(converted_mark(tenant, block)):
                continue
            if not self.blobs.exists(key):
                report.missing_raw.append(key)
            elif key in failures and failures[key].attempts >= MAX_ATTEMPTS:
                report.given_up.append(key)
            else:
                self._convert(key, report, queued)
        if any((report.refused, report.missing_raw, report.given_up)):
            _log.warning("reconciliation found blocks it cannot complete: %s", report.to_json())
        return report

    def _raw_object(self, key: str, report: ReconcileReport, queued: set[str]) -> None:
        raw = parse_raw_key(key)
        if raw is None or self.metadata.get_block(raw.tenant, raw.block_id) is not None:
            return
        try:
            block = self.check(raw.tenant, self.blobs.get(key))
            if block.object_key != key:
                raise ValueError(f"its header places it at {block.object_key}")
            self.metadata.insert_block(raw.tenant, block)
        except Exception as error:
            _log.warning("raw object %s without metadata is not a valid block: %s", key, error)
            report.refused.append(key)
            return
        report.adopted.append(key)
        self._convert(key, report, queued)

    def _convert(self, key: str, report: ReconcileReport, queued: set[str]) -> None:
        queued.add(key)
        report.converted.append(key)
        self.convert(key)
