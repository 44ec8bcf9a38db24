"""Acknowledged, then converted, whatever crashes in between (issue 10, item 6): the local
server killed between acknowledgement and conversion, a conversion that raises, a raw object
stored without its metadata row. The reconciler at start completes them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter
from blocklake.ingest.service import IngestService
from blocklake.server.lake import LocalLake
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from tests import hostile
from tests.helpers import KEYS, log_block, process_document, stream_document

API_KEY = next(iter(KEYS))
ROOT = Path(__file__).resolve().parents[2]

# A server whose conversion worker never gets to run: what SIGKILL right after the answers
# leaves behind, every time.
SERVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from blocklake.config import Settings
    from blocklake.server.http import LocalServer
    from blocklake.server.lake import LocalLake

    LocalLake._convert = lambda self, keys: time.sleep(3600)
    settings = Settings(data_dir=Path(sys.argv[1]), api_keys={sys.argv[2]: "acme"})
    server = LocalServer(settings, port=0).start()
    print(server.url, flush=True)
    time.sleep(3600)
    """
)


def post(url: str, path: str, body: bytes | dict) -> tuple[int, dict]:
    is_json = isinstance(body, dict)
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode() if is_json else body,
        headers={
            "x-api-key": API_KEY,
            "content-type": "application/json" if is_json else "application/octet-stream",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def count_logs(lake: LocalLake) -> int:
    now = time.time_ns()
    response = lake.handle_http(
        "POST",
        "/v1/query",
        "",
        {"x-api-key": API_KEY, "content-type": "application/json"},
        json.dumps(
            {"sql": "SELECT count(*) FROM log_entries", "begin": now - 3600 * 10**9, "end": now}
        ).encode(),
        "127.0.0.1",
    )
    assert response.status == 200, response.body
    return json.loads(response.body)["rows"][0][0]


def test_sigkill_between_acknowledgement_and_conversion_loses_nothing(settings: Settings) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(settings.data_dir), API_KEY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), url
        process = process_document()
        assert post(url, "/v1/processes", process)[0] == 201
        stream = stream_document(process["process_id"])
        assert post(url, "/v1/streams", stream)[0] == 201
        blocks = [
            log_block(stream["stream_id"], [f"log {b}.{i}" for i in range(1000)], sequence=b)
            for b in range(60)
        ]
        for block in blocks:
            assert post(url, "/v1/blocks", block)[1]["status"] == "stored"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    restarted = LocalLake(settings)
    try:
        assert len(restarted.reconciled.converted) == 60
        restarted.wait_converted()
        assert restarted.failed_conversions == 0
        assert count_logs(restarted) == 60_000
        retried = restarted.handle_http(  # a client retrying after the crash
            "POST",
            "/v1/blocks",
            "",
            {"x-api-key": API_KEY, "content-type": "application/octet-stream"},
            blocks[0],
            "127.0.0.1",
        )
        assert json.loads(retried.body)["status"] == "duplicate"
        restarted.wait_converted()
        assert count_logs(restarted) == 60_000
    finally:
        restarted.close()
    # and a second restart finds nothing left to do
    settled = LocalLake(settings)
    try:
        assert settled.reconciled.converted == []
        assert count_logs(settled) == 60_000
    finally:
        settled.close()


@pytest.fixture
def registered(settings: Settings):
    """A lake with a registered process and stream, closed at the end; (lake, stream id)."""
    lake = LocalLake(settings)
    process = process_document()
    service = IngestService(lake.blobs, lake.metadata, settings.max_block_bytes)
    service.register_process("acme", process)
    stream = stream_document(process["process_id"])
    service.register_stream("acme", stream)
    yield lake, service, stream["stream_id"]
    lake.close()


def test_a_conversion_that_raises_is_completed_at_restart(registered, monkeypatch) -> None:
    lake, service, stream = registered

    def explode(self: BlockConverter, key: str) -> None:
        raise RuntimeError("injected: the conversion crashed")

    monkeypatch.setattr(BlockConverter, "convert_key", explode)
    service.store_block("acme", log_block(stream, ["survives"]))
    lake.wait_converted()
    (failure,) = lake.metadata.conversion_failures("acme")
    assert "injected" in failure.reason
    monkeypatch.undo()
    restarted = LocalLake(lake.settings)
    try:
        assert len(restarted.reconciled.converted) == 1
        restarted.wait_converted()
        assert count_logs(restarted) == 1
        assert restarted.metadata.conversion_failures() == []
    finally:
        restarted.close()


def test_raw_objects_without_metadata_are_adopted_or_reported(registered) -> None:
    lake, service, stream = registered
    quiet = LocalBlobStore(lake.blobs.root)  # as the ingest of old left them: object, no row
    good = log_block(stream, ["orphan", "adopted"])
    key = service.validated_block("acme", good).object_key
    quiet.put_if_absent(key, good)
    bomb = raw_key("acme", time.time_ns(), stream, "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    quiet.put_if_absent(bomb, hostile.span_bomb(stream))
    # and a row whose object never arrived
    lost = service.validated_block("acme", log_block(stream, ["never stored"]))
    lake.metadata.insert_block("acme", lost)

    restarted = LocalLake(lake.settings)
    try:
        report = restarted.reconciled
        assert (report.adopted, report.refused, report.missing_raw) == (
            [key],
            [bomb],
            [lost.object_key],
        )
        restarted.wait_converted()
        assert count_logs(restarted) == 2
        assert restarted.metadata.get_block("acme", key.split("/")[-1][:-4]) is not None
    finally:
        restarted.close()
