"""Which Parquet files of a table partition hold its rows: fragments, or their compaction.

The ETL writes one fragment per block (``<block_id>.parquet``). Compaction merges a partition's
fragments into ``compacted-<digest>.parquet`` and then writes ``_compaction.json`` naming that
file and the fragments it covers. Readers use the compacted file plus the fragments it does not
cover (blocks that arrived later): a partition reads the same rows before, during and after a
compaction, never twice, without any file being deleted under a running query.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Iterable

from blocklake.stores.blobs import BlobStore

MANIFEST = "_compaction.json"


def by_partition(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys grouped by their directory (the partition), names only."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        directory, name = posixpath.split(key)
        grouped[directory].append(name)
    return grouped


def read_manifest(blobs: BlobStore, directory: str) -> dict:
    return json.loads(blobs.get(f"{directory}/{MANIFEST}"))


def live_names(blobs: BlobStore, directory: str, names: list[str]) -> list[str]:
    """The files of one partition that hold its rows, each row in exactly one of them."""
    fragments = [
        name for name in names if name.endswith(".parquet") and not name.startswith("compacted-")
    ]
    if MANIFEST not in names:
        return sorted(fragments)
    manifest = read_manifest(blobs, directory)
    covered = set(manifest["fragments"])
    return [manifest["file"], *sorted(name for name in fragments if name not in covered)]


def live_files(blobs: BlobStore, keys: Iterable[str]) -> list[str]:
    """Keys of the files holding the rows of the partitions ``keys`` belong to."""
    return [
        f"{directory}/{name}"
        for directory, names in sorted(by_partition(keys).items())
        for name in live_names(blobs, directory, names)
    ]
