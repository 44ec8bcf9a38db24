"""The ingest Lambda ships without pyarrow (infra/assets.py): its whole validation, payload
included, must run on the standard library and lz4."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    sys.modules["pyarrow"] = None  # any import of it now fails
    from lambdas.ingest import handler
    from blocklake.ingest.service import IngestService
    from blocklake.stores.blobs import LocalBlobStore
    from blocklake.stores.metadata import SqlMetadataStore
    from blocklake.stores.sql import SqliteExecutor
    from tests.helpers import log_block, process_document, stream_document
    from tests import hostile

    metadata = SqlMetadataStore(SqliteExecutor(":memory:"))
    metadata.migrate()
    service = IngestService(LocalBlobStore(tempfile.mkdtemp()), metadata, 4 << 20)
    process = process_document()
    service.register_process("t", process)
    stream = stream_document(process["process_id"], *hostile.LAYOUT_NAMES)
    service.register_stream("t", stream)
    assert not service.store_block("t", log_block(stream["stream_id"], ["ok"])).duplicate
    try:
        service.store_block("t", hostile.span_bomb(stream["stream_id"]))
    except Exception as error:
        assert error.status == 400, error
    print("ingest ran without pyarrow")
    """
)


def test_ingest_validates_blocks_without_pyarrow() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ingest ran without pyarrow" in run.stdout
