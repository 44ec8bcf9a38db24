"""Hourly compaction: merge each closed hour's fragments into one Parquet file per partition.

Many small files make every query list and open more objects; an hour of fragments becomes one
file once the hour has closed. Late blocks keep landing as fragments and are merged by the next
run. Compaction is idempotent: its output name is a digest of the fragments it covers.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from blocklake.etl.convert import parquet_bytes
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import partition, table_prefix
from blocklake.stores.table_files import MANIFEST, by_partition, live_names, read_manifest

HOUR_NS = 3600 * 1_000_000_000
GRACE_NS = 20 * 60 * 1_000_000_000
"""Replaced files stay this long after the manifest that replaced them: longer than a query
(the query Lambda's timeout) that listed them before could still be reading them."""
HOURS_BACK = 3
"""Closed hours revisited on each run, so blocks that arrive late are merged too."""
PARTITIONED_BY_BLOCK = (
    "log_entries",
    "measures",
    "thread_spans",
    "async_spans",
    "blocks",
    "attachments",
    "unmatched_spans",
)
"""Tables written one fragment per block; processes and streams are one file per id already."""


@dataclass
class CompactionReport:
    partitions: int = 0
    fragments: int = 0
    deleted: int = 0
    files_written: list[str] = field(default_factory=list)


class Compactor:
    """Finds the hours that received blocks by listing raw/ folders, not by asking the metadata
    database: an hourly task must not wake a paused Aurora cluster."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def active_hours(self, now_ns: int) -> list[tuple[str, int]]:
        """(tenant, hour start) of the last closed hours that received raw blocks."""
        current_hour = now_ns // HOUR_NS * HOUR_NS
        hours = [current_hour - back * HOUR_NS for back in range(HOURS_BACK, 0, -1)]
        active = []
        for folder in self.blobs.list_folders("raw/"):
            tenant = folder.removeprefix("raw/tenant=").rstrip("/")
            for hour in hours:
                if self.blobs.list_folders(f"{folder}{partition(hour)}/"):
                    active.append((tenant, hour))
        return active

    def compact_closed_hours(self, now_ns: int) -> CompactionReport:
        report = CompactionReport()
        for tenant, hour in self.active_hours(now_ns):
            for table in PARTITIONED_BY_BLOCK:
                self.compact_partition(table, tenant, hour, now_ns, report)
        return report

    def compact_partition(
        self, table: str, tenant: str, hour_ns: int, now_ns: int, report: CompactionReport
    ) -> None:
        directory = f"{table_prefix(table, tenant)}{partition(hour_ns)}"
        names = by_partition(self.blobs.list(directory + "/")).get(directory, [])
        manifest = read_manifest(self.blobs, directory) if MANIFEST in names else None
        if manifest is not None and now_ns - manifest["written_ns"] > GRACE_NS:
            self._remove_replaced(directory, names, manifest, report)
        live = live_names(self.blobs, directory, names)
        if len(live) < 2:
            return
        covered = set(manifest["fragments"]) if manifest else set()
        covered.update(name for name in live if not name.startswith("compacted-"))
        digest = hashlib.sha256("\n".join(sorted(covered)).encode()).hexdigest()[:20]
        output = f"compacted-{digest}.parquet"
        merged = pa.concat_tables(
            [pq.read_table(io.BytesIO(self.blobs.get(f"{directory}/{name}"))) for name in live],
            promote_options="permissive",
        )
        self.blobs.put(f"{directory}/{output}", parquet_bytes(merged.combine_chunks()))
        # The manifest goes last: until it exists, readers keep reading the fragments.
        manifest = {
            "file": output,
            "fragments": sorted(covered),
            "rows": merged.num_rows,
            "written_ns": now_ns,
        }
        self.blobs.put(f"{directory}/{MANIFEST}", json.dumps(manifest).encode())
        report.partitions += 1
        report.fragments += len(live)
        report.files_written.append(f"{directory}/{output}")

    def _remove_replaced(
        self, directory: str, names: list[str], manifest: dict, report: CompactionReport
    ) -> None:
        """Files the manifest made unread: its fragments, and compacted files it superseded. Only
        once the manifest is older than any query that could have listed them before it."""
        covered = set(manifest["fragments"])
        replaced = [
            name
            for name in names
            if name in covered or (name.startswith("compacted-") and name != manifest["file"])
        ]
        if replaced:
            self.blobs.delete([f"{directory}/{name}" for name in replaced])
            report.deleted += len(replaced)
