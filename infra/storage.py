"""The lake bucket: raw blocks under ``raw/``, Parquet under ``tables/``, attachments under
``attachments/``, Athena results."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge, logical_id
from infra.settings import Retention, StackSettings

RAW_PREFIX = "raw/"
TABLES_PREFIX = "tables/"
ATTACHMENTS_PREFIX = "attachments/"
USER_TYPES_PREFIX = "user-types/"
"""The type of each field of the tenants' own event types (``blocklake.ingest.user_types``)."""
"""Attachments' bytes and declarations (blocklake.attachments), kept as long as the tables that
link to them."""
STAGING_PREFIX = "staging/"
"""Rows conversions staged for the committer (``blocklake.lake.staging``)."""
LAKE_RECORDS_PREFIX = "lake/"
"""Marks of staged rows, the committer's batch records, orphan candidates."""
ATHENA_RESULTS_PREFIX = "athena-results/"
ATHENA_RESULTS_DAYS = 7
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
"""The singleton through which aws-cdk-lib applies S3 notification configurations."""


class LakeStorage(Construct):
    def __init__(
        self, scope: Construct, id: str, *, settings: StackSettings, table_names: list[str]
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=lifecycle_rules(settings, table_names),
            # The lake is the product: deleting the stack must not delete the data.
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Server access logs would add a log object per block upload and per query read; "
            "CloudTrail S3 data events can be enabled on the account when an audit needs it.",
        )

    def allow(self, role: iam.IRole, actions: list[str], prefix: str) -> None:
        """Object ``actions`` under ``prefix`` only, and listing of that prefix only: explicit
        actions rather than CDK's ``grant_*`` families (``s3:GetObject*``, ``s3:List*`` on the
        whole bucket), so each role holds exactly what its function calls."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions, resources=[self.bucket.arn_for_objects(f"{prefix}*")]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.bucket)}.Arn>/{prefix}*]",
            f"Objects are created at run time under {prefix}; the role is limited to that prefix.",
        )

    def notify_raw_blocks(self, queue: sqs.IQueue) -> None:
        """Every new raw block becomes an SQS message for the eager ETL."""
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(queue),
            s3.NotificationKeyFilter(prefix=RAW_PREFIX),
        )
        handler = Stack.of(self).node.find_child(NOTIFICATIONS_HANDLER_ID)
        acknowledge(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "aws-cdk-lib's own handler that applies the bucket notification configuration at "
            "deploy time; CDK defines its role.",
        )


def lifecycle_rules(settings: StackSettings, table_names: list[str]) -> list[s3.LifecycleRule]:
    """Expiry per prefix, with per-tenant rules on the tenant's own prefixes (which settings
    only allow to be shorter, as S3 honours the shortest of overlapping rules)."""
    rules = [
        s3.LifecycleRule(
            id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
        ),
        s3.LifecycleRule(
            id="athena-results",
            prefix=ATHENA_RESULTS_PREFIX,
            expiration=Duration.days(ATHENA_RESULTS_DAYS),
        ),
        *_expiry("raw", [RAW_PREFIX], settings.retention.raw_days),
        # Not tables/: an Iceberg table's metadata and data files live and go together, through
        # its snapshots (a file expired under a table would break every read of it).
        *_expiry("attachments", [ATTACHMENTS_PREFIX], settings.retention.tables_days),
    ]
    for tenant, retention in sorted(settings.tenant_retention.items()):
        rules += _tenant_rules(tenant, retention, table_names)
    return rules


def _tenant_rules(
    tenant: str, retention: Retention, table_names: list[str]
) -> list[s3.LifecycleRule]:
    return [
        *_expiry(f"raw-{tenant}", [f"{RAW_PREFIX}tenant={tenant}/"], retention.raw_days),
        *_expiry(
            f"attachments-{tenant}",
            [f"{ATTACHMENTS_PREFIX}tenant={tenant}/"],
            retention.tables_days,
        ),
    ]


def _expiry(name: str, prefixes: list[str], days: int | None) -> list[s3.LifecycleRule]:
    if days is None:
        return []
    return [
        s3.LifecycleRule(
            id=name if len(prefixes) == 1 else f"{name}-{index}",
            prefix=prefix,
            expiration=Duration.days(days),
        )
        for index, prefix in enumerate(prefixes)
    ]
