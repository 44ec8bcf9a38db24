"""The one blocklake stack: storage, database, functions, API, ETL pipeline, catalog, alarms."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from blocklake.format import schema
from infra.api import IngestQueryApi
from infra.catalog import QueryCatalog
from infra.database import DATABASE_NAME, MetadataDatabase
from infra.functions import LakeFunction
from infra.migrations import SchemaMigrations
from infra.monitoring import Alarms
from infra.pipeline import EtlPipeline
from infra.settings import StackSettings
from infra.storage import (
    ATHENA_RESULTS_PREFIX,
    ATTACHMENTS_PREFIX,
    LAKE_RECORDS_PREFIX,
    RAW_PREFIX,
    STAGING_PREFIX,
    TABLES_PREFIX,
    USER_TYPES_PREFIX,
    LakeStorage,
)

ETL_TIMEOUT = Duration.minutes(5)
API_TIMEOUT = Duration.seconds(29)
"""Under HTTP API's 30 s integration limit, so a slow request fails in the function (logged)
rather than at the gateway."""

ATHENA_QUERY_ACTIONS = [
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
    "athena:GetWorkGroup",
]
ATHENA_RESULT_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


class BlocklakeStack(Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(
            scope, id, description="blocklake: serverless telemetry lakehouse", **kwargs
        )
        settings = StackSettings.from_context(self)
        database = MetadataDatabase(self, "Metadata", max_capacity=settings.database_max_capacity)
        cluster = database.cluster
        storage = LakeStorage(self, "Lake", settings=settings, table_names=list(schema.tables()))
        bucket = storage.bucket
        catalog = QueryCatalog(
            self,
            "Catalog",
            bucket=bucket,
            bytes_scanned_per_query=settings.athena_bytes_scanned_per_query,
        )
        metadata_env = {
            "BLOCKLAKE_BUCKET": bucket.bucket_name,
            "BLOCKLAKE_DB_CLUSTER_ARN": cluster.cluster_arn,
            "BLOCKLAKE_DB_SECRET_ARN": cluster.secret.secret_arn,
            "BLOCKLAKE_DB_NAME": DATABASE_NAME,
        }
        concurrency = settings.reserved_concurrency

        ingest = LakeFunction(
            self,
            "Ingest",
            function="ingest",
            traced=True,  # powertools Tracer: X-Ray segments per invocation
            # Stores blocks untouched: memory buys CPU for the TLS upload, little else.
            memory_mb=512,
            timeout=API_TIMEOUT,
            environment=metadata_env,
            reserved_concurrency=concurrency.get("ingest"),
        )
        storage.allow(ingest.role, ["s3:PutObject"], RAW_PREFIX)
        # Attachments: declarations written and read; its presigned PUTs carry this role's
        # credentials, so the bytes are put with them too (no GetObject of them is needed).
        storage.allow(ingest.role, ["s3:PutObject", "s3:GetObject"], ATTACHMENTS_PREFIX)
        # The type of each field of the tenants' own event types: written once, read back.
        storage.allow(ingest.role, ["s3:PutObject", "s3:GetObject"], USER_TYPES_PREFIX)
        cluster.grant_data_api_access(ingest.role)

        lake_env = {**metadata_env, "BLOCKLAKE_GLUE_DATABASE": catalog.database_name}
        etl = LakeFunction(
            self,
            "Etl",
            function="etl",
            traced=True,  # powertools Tracer: X-Ray segments per invocation
            # Decompresses and converts whole blocks in Arrow: memory-bound.
            memory_mb=2048,
            timeout=ETL_TIMEOUT,
            environment=lake_env,
            reserved_concurrency=concurrency.get("etl"),
        )
        storage.allow(etl.role, ["s3:GetObject"], RAW_PREFIX)
        # Conversion stages rows and marks them (blocklake.lake.staging); a failed conversion
        # is written to its tenant's conversion_failures table directly.
        for prefix in (STAGING_PREFIX, LAKE_RECORDS_PREFIX, TABLES_PREFIX):
            storage.allow(etl.role, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], prefix)
        catalog.grant_commit(etl.role)
        cluster.grant_data_api_access(etl.role)
        # The tables' single writer: commits what conversions staged (about every 5 s), and
        # compacts, expires snapshots and removes orphans hourly. One run at a time by turns
        # taken in the bucket (blocklake.lake.turns), not reserved concurrency, which fails to
        # deploy in an account with a small concurrency quota.
        retention = settings.retention.tables_days
        committer = LakeFunction(
            self,
            "Committer",
            function="committer",
            traced=True,
            memory_mb=2048,
            timeout=ETL_TIMEOUT,
            environment={
                **lake_env,
                # Rows past the retention are deleted through the tables (not by S3 lifecycle).
                **({"BLOCKLAKE_TABLES_RETENTION_DAYS": str(retention)} if retention else {}),
            },
            reserved_concurrency=concurrency.get("committer"),
        )
        for prefix in (STAGING_PREFIX, LAKE_RECORDS_PREFIX, TABLES_PREFIX):
            storage.allow(
                committer.role, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], prefix
            )
        catalog.grant_commit(committer.role)

        query = LakeFunction(
            self,
            "Query",
            function="query",
            traced=True,  # powertools Tracer: X-Ray segments per invocation
            # DuckDB scans Parquet in memory; 2 GB gives it a full vCPU and room to aggregate.
            memory_mb=2048,
            timeout=API_TIMEOUT,
            environment={
                **metadata_env,
                "BLOCKLAKE_ATHENA_WORKGROUP": catalog.workgroup_name,
                "BLOCKLAKE_GLUE_DATABASE": catalog.database_name,
                "BLOCKLAKE_ETL_FUNCTION_NAME": etl.function.function_name,
            },
            reserved_concurrency=concurrency.get("query"),
        )
        storage.allow(query.role, ["s3:GetObject"], TABLES_PREFIX)
        # Downloads: the declaration read, the bytes through a presigned GET of this role.
        storage.allow(query.role, ["s3:GetObject"], ATTACHMENTS_PREFIX)
        # Athena writes results with the caller's permissions.
        storage.allow(query.role, ATHENA_RESULT_OBJECT_ACTIONS, ATHENA_RESULTS_PREFIX)
        # Each tenant's daily query budget: one empty object per query (blocklake.query.budget).
        storage.allow(query.role, ["s3:PutObject"], "usage/")
        query.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn])
        )
        cluster.grant_data_api_access(query.role)
        # DuckDB never gets the function's own credentials: for each tenant the function assumes
        # this role with a session policy narrowing it to that tenant's table prefixes.
        reader = iam.Role(
            self,
            "QueryTenantReader",
            assumed_by=query.role,
            description="blocklake: a tenant's queries read its own tables (session policy)",
            max_session_duration=Duration.hours(1),
        )
        storage.allow(reader, ["s3:GetObject"], TABLES_PREFIX)
        reader.grant_assume_role(query.role)
        query.function.add_environment("BLOCKLAKE_QUERY_READER_ROLE_ARN", reader.role_arn)
        # Just-in-time materialization: the query function asks the ETL to convert what is stale.
        query.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[etl.function.function_arn]
            )
        )
        query.role.add_to_principal_policy(
            iam.PolicyStatement(actions=ATHENA_QUERY_ACTIONS, resources=[catalog.workgroup_arn])
        )
        catalog.grant_read(query.role)

        api = IngestQueryApi(self, "Api", ingest=ingest.function, query=query.function)
        pipeline = EtlPipeline(
            self,
            "Pipeline",
            etl=etl.function,
            committer=committer.function,
            etl_timeout=ETL_TIMEOUT,
        )
        storage.notify_raw_blocks(pipeline.queue)
        SchemaMigrations(self, "Schema", cluster=cluster, database=DATABASE_NAME)
        alarms = Alarms(
            self,
            "Alarms",
            functions={
                "ingest": ingest.function,
                "etl": etl.function,
                "committer": committer.function,
                "query": query.function,
                "authorizer": api.authorizer_function.function,
            },
            dead_letters=pipeline.dead_letters,
            email=settings.alarm_email,
        )

        outputs = {
            "ApiUrl": (api.url, "endpoint for blocklake.sdk.init(endpoint=...) and the CLI"),
            "ApiKeysSecretArn": (api.api_keys.secret_arn, 'API keys: {"<sha256 hex>": "<tenant>"}'),
            "CreateApiKey": (
                Fn.join(
                    "",
                    [
                        "blocklake api-key --secret-arn ",
                        api.api_keys.secret_arn,
                        " --tenant <tenant>",
                    ],
                ),
                "run this to create the first API key",
            ),
            "SmokeTest": (
                Fn.join("", ["blocklake smoke --endpoint ", api.url, " --api-key <key>"]),
                "run this next: records, waits until queryable, checks every count",
            ),
            "BucketName": (bucket.bucket_name, "the lake: raw/ blocks and tables/ Parquet"),
            "GlueDatabase": (
                catalog.database_name,
                "each tenant's Iceberg tables are in the Glue database <this>_<tenant>",
            ),
            "AthenaWorkgroup": (catalog.workgroup_name, "Athena workgroup (scan-limited)"),
            "ClusterArn": (cluster.cluster_arn, "Aurora cluster (Data API) holding metadata"),
            "DatabaseSecretArn": (cluster.secret.secret_arn, "credentials for the Data API"),
            "DatabaseName": (DATABASE_NAME, "database name for the Data API"),
            "DeadLetterQueueUrl": (
                pipeline.dead_letters.queue_url,
                "raw blocks the ETL gave up on",
            ),
            "AlarmTopicArn": (alarms.topic.topic_arn, "subscribe to receive alarms"),
        }
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
