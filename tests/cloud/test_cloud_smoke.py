"""``blocklake smoke`` against the cloud path: the API Gateway stand-in in front of the ingest and
query Lambdas on moto's S3 and the Data API shim, with the S3 → SQS → ETL pipeline played by a
thread, as the event source mapping would."""

from __future__ import annotations

import threading

from blocklake import sdk
from blocklake.config import QueryLimits
from blocklake.ingest.service import IngestService
from blocklake.server.events import LambdaContext
from blocklake.smoke import run_smoke
from lambdas.etl import handler as etl_handler
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler
from tests.cloud.conftest import CloudLake
from tests.cloud.test_cloud_e2e import API_KEY, ApiGateway


def test_smoke_passes_on_the_cloud_path(cloud_lake: CloudLake) -> None:
    ingest = ingest_handler.make_handler(
        IngestService(cloud_lake.blob_store(), cloud_lake.metadata, 4 * 1024 * 1024)
    )
    etl = etl_handler.make_handler(cloud_lake.converter(cloud_lake.blob_store()))
    query = query_handler.make_handler(cloud_lake.query_engine(), QueryLimits())
    gateway = ApiGateway({"ingest": ingest, "query": query})
    committer = cloud_lake.lake()
    stop = threading.Event()

    def event_source_mapping() -> None:
        """SQS to the ETL, then the committer's next round."""
        while not stop.is_set():
            if messages := cloud_lake.receive(wait_s=1):
                result = etl(cloud_lake.lambda_event(messages), LambdaContext("blocklake-etl"))
                cloud_lake.settle(messages, result)
            committer.commit_pending()

    pump = threading.Thread(target=event_source_mapping, daemon=True)
    pump.start()
    lines: list[str] = []
    try:
        run_smoke(gateway.url, API_KEY, timeout_s=60, say=lines.append)
    finally:
        stop.set()
        pump.join()
        sdk.shutdown()
        gateway.close()
    assert lines[-1].startswith("smoke test passed"), lines
    assert gateway.requests["/v1/blocks"] >= 3  # logs, metrics and span streams went through
