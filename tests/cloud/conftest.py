"""The cloud path on this machine: moto's ``ThreadedMotoServer`` (S3 + SQS over real HTTP, so
DuckDB's httpfs can reach it), the RDS Data API served from the real PostgreSQL at 127.0.0.1:5432
by ``tests.support.rds_data_shim``, and the three Lambda handlers called as Lambda would.

One moto server per session on a free port (port 0: werkzeug binds it and moto reports the real
one), stopped at the end; one PostgreSQL database per session, dropped at the end.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg import sql
from psycopg.conninfo import make_conninfo

from blocklake.config import QueryLimits, Settings
from blocklake.etl.convert import BlockConverter
from blocklake.lake.catalog import open_lake
from blocklake.lake.iceberg import IcebergLake
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.stores.data_api import DataApiExecutor
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.s3 import RETRY_CONFIG, S3BlobStore
from tests.support.postgres import throwaway_database
from tests.support.rds_data_shim import CLUSTER_ARN, SECRET_ARN, RdsDataShim

REGION = "us-east-1"
READER_ROLE_ARN = "arn:aws:iam::123456789012:role/blocklake-tenant-reader"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server; the environment points every AWS client
    (boto3's and DuckDB's) at it with fake credentials, so nothing can reach a real account."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this run's own, dropped at the end; the URL to reach it."""
    with throwaway_database("blocklake_cloud") as url:
        yield url


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=RETRY_CONFIG)


class CountingS3BlobStore(S3BlobStore):
    """Counts the S3 requests a handler makes through the blob store, for the cost figures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.puts = self.gets = self.heads = self.lists = 0

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self.puts += 1
        return super().put_if_absent(key, data)

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        super().put(key, data)

    def get(self, key: str) -> bytes:
        self.gets += 1
        return super().get(key)

    def exists(self, key: str) -> bool:
        self.heads += 1
        return super().exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        self.lists += 1
        return super().list(prefix)


@dataclass
class CloudLake:
    """A bucket with ``raw/`` notifications to a queue with a dead-letter queue, and metadata
    in PostgreSQL through the Data API."""

    endpoint: str
    bucket: str
    queue_url: str
    dlq_url: str
    s3: Any
    sqs: Any
    shim: RdsDataShim
    metadata: SqlMetadataStore
    received: list[dict] = field(default_factory=list)

    glue_database: str = "blocklake_cloud"

    def blob_store(self) -> CountingS3BlobStore:
        return CountingS3BlobStore(self.bucket, client=_client("s3", self.endpoint))

    def settings(self, limits: QueryLimits | None = None) -> Settings:
        """The deployed functions' settings: the lake in the bucket, its Iceberg catalog Glue
        (moto's), each tenant's tables in ``<glue_database>_<tenant>``."""
        return Settings(
            bucket=self.bucket,
            glue_database=self.glue_database,
            query_reader_role_arn=READER_ROLE_ARN,
            query=limits or QueryLimits(),
        )

    def lake(self, blobs: CountingS3BlobStore | None = None) -> IcebergLake:
        """The lake as the ETL and committer functions open it (pyiceberg's GlueCatalog)."""
        return open_lake(self.settings(), blobs or self.blob_store())

    def converter(self, blobs: CountingS3BlobStore) -> BlockConverter:
        return BlockConverter(blobs, self.metadata, self.lake(blobs))

    def query_engine(self, limits: QueryLimits | None = None) -> DuckDbEngine:
        """The DuckDB engine as the deployed query Lambda builds it: each tenant's S3 access
        from STS (moto's) through the reader role."""
        return DuckDbEngine.for_settings(self.settings(limits), self.blob_store())

    def receive(self, wait_s: float = 0) -> list[dict]:
        """One ``ReceiveMessage`` of up to 10 messages, as the Lambda event source does."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=int(wait_s),
            AttributeNames=["All"],
        )
        return response.get("Messages", [])

    def lambda_event(self, messages: list[dict]) -> dict:
        """The SQS messages as the event source mapping hands them to the function."""
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn["Attributes"]["QueueArn"],
                    "awsRegion": REGION,
                }
                for message in messages
            ]
        }

    def settle(self, messages: list[dict], result: dict) -> list[dict]:
        """What the event source mapping does with the handler's answer: deletes the messages
        that succeeded; the failed ones stay, to come back after the visibility timeout (made
        0 here so that the test need not wait). Returns the failed messages."""
        failed_ids = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        failed = []
        for message in messages:
            if message["MessageId"] in failed_ids:
                failed.append(message)
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
            else:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return failed

    def dead_letters(self) -> list[dict]:
        response = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10)
        return response.get("Messages", [])


@pytest.fixture
def cloud_lake(moto_endpoint: str, postgres_database: str) -> Iterator[CloudLake]:
    suffix = uuid.uuid4().hex[:8]
    s3, sqs = _client("s3", moto_endpoint), _client("sqs", moto_endpoint)
    bucket = f"blocklake-cloud-{suffix}"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"raw-blocks-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
    queue_url = sqs.create_queue(
        QueueName=f"raw-blocks-{suffix}",
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "60"},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "raw-blocks",
                    "QueueArn": queue_arn["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/"}]}},
                }
            ]
        },
    )
    schema = f"cloud_{suffix}"
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    shim = RdsDataShim(make_conninfo(postgres_database, options=f"-c search_path={schema}"))
    metadata = SqlMetadataStore(
        DataApiExecutor(CLUSTER_ARN, SECRET_ARN, "blocklake", client=shim.client())
    )
    metadata.migrate()
    glue = f"blocklake_{suffix}"
    lake = CloudLake(moto_endpoint, bucket, queue_url, dlq_url, s3, sqs, shim, metadata, [], glue)
    try:
        yield lake
    finally:
        shim.close()
