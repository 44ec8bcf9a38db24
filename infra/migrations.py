"""Schema migrations applied on every deploy that changes them, through the Data API.

A custom resource calls ``lambdas/migrate``; its properties carry a hash of
``schemas/metadata/*.sql``, so CloudFormation updates it (and the migrations run) exactly when a
migration file changes. Applying migrations is idempotent, so a re-run is harmless.
"""

from __future__ import annotations

import hashlib

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_rds as rds
from aws_cdk import custom_resources as cr
from constructs import Construct

from blocklake.format.schema import schemas_dir
from infra.functions import LakeFunction, lambda_role, retained_log_group
from infra.nag import acknowledge, logical_id


def migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((schemas_dir() / "metadata").glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class SchemaMigrations(Construct):
    def __init__(
        self, scope: Construct, id: str, *, cluster: rds.DatabaseCluster, database: str
    ) -> None:
        super().__init__(scope, id)
        self.migrate = LakeFunction(
            self,
            "Migrate",
            function="migrate",
            memory_mb=256,
            # A paused cluster takes up to about a minute to resume before the first statement.
            timeout=Duration.minutes(5),
            environment={},
        )
        cluster.grant_data_api_access(self.migrate.role)
        framework_logs = retained_log_group(self, "ProviderLogs")
        framework_role = lambda_role(self, "ProviderRole", framework_logs)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.migrate.function,
            framework_on_event_role=framework_role,
            log_group=framework_logs,
        )
        acknowledge(
            provider,
            "AwsSolutions-L1",
            "The provider framework's function and its runtime are chosen by aws-cdk-lib.",
        )
        acknowledge(
            framework_role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.migrate.function)}.Arn>:*]",
            "CDK's provider framework may invoke the migrate function by version or alias.",
        )
        self.resource = CustomResource(
            self,
            "Applied",
            service_token=provider.service_token,
            resource_type="Custom::BlocklakeSchemaMigrations",
            properties={
                "ClusterArn": cluster.cluster_arn,
                "SecretArn": cluster.secret.secret_arn,
                "Database": database,
                "MigrationsHash": migrations_hash(),
            },
        )
        # The writer instance, not only the cluster, must be up before a statement can run.
        self.resource.node.add_dependency(cluster)
