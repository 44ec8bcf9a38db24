"""Where staged fragments, their marks and the committer's batch records are kept (blob keys).

Plain names, no pyiceberg: the reconciler asks whether a block was converted with ``mark_key``.

- ``staging/tenant=<t>/<table>/<digest>/<n>.parquet``: a staged fragment;
- ``lake/appended/tenant=<t>/<table>/<digest>``: the mark that the fragments of ``digest`` (of
  their sources) are all staged, written last; kept, so that a retry stages nothing twice;
- ``lake/batches/<id>.json``: a batch being committed (see ``blocklake.lake.iceberg``);
- ``lake/orphans/<table location>.json``: files no snapshot names, with when first seen.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

STAGING = "staging/"
MARKS = "lake/appended/"
BATCHES = "lake/batches/"
ORPHANS = "lake/orphans/"


def digest(sources: Sequence[str]) -> str:
    """A name for a set of sources: the same whatever their order."""
    return hashlib.sha256("\n".join(sorted(set(sources))).encode()).hexdigest()[:32]


def staged_key(table: str, tenant: str, sources: Sequence[str], number: int) -> str:
    return f"{STAGING}tenant={tenant}/{table}/{digest(sources)}/{number}.parquet"


def mark_key(table: str, tenant: str, sources: Sequence[str]) -> str:
    """The object saying that the rows of ``table`` built from ``sources`` were staged."""
    return f"{MARKS}tenant={tenant}/{table}/{digest(sources)}"


def parquet_bytes(table: pa.Table) -> bytes:
    """Dictionary encoding only for strings: on times and floats it costs more than it saves
    (most of the write time, and files twice the size, measured in bench/etl_throughput.py)."""
    strings = [
        field.name
        for field in table.schema
        if pa.types.is_dictionary(field.type) or pa.types.is_string(field.type)
    ]
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=strings)
    return sink.getvalue()
