"""A blocklake Lambda function: arm64, Python 3.12, its own role and log group.

Each function gets a role with no managed policy: it may write to its own log group and, through
the grants made by the constructs that use it, touch only what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.assets import asset_hash, build_asset
from infra.nag import acknowledge

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


def lambda_role(scope: Construct, id: str, log_group: logs.ILogGroup) -> iam.Role:
    role = iam.Role(scope, id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    return role


def retained_log_group(scope: Construct, id: str) -> logs.LogGroup:
    return logs.LogGroup(scope, id, retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY)


class LakeFunction(Construct):
    """``function`` names the folder under ``lambdas/`` and the dependency set of its asset."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        function: str,
        memory_mb: int,
        timeout: Duration,
        environment: Mapping[str, str],
        reserved_concurrency: int | None = None,
        traced: bool = False,
    ) -> None:
        super().__init__(scope, id)
        self.log_group = retained_log_group(self, "Logs")
        self.role = lambda_role(self, "Role", self.log_group)
        asset = build_asset(function)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"lambdas.{function}.handler.handler",
            code=lambda_.Code.from_asset(
                str(asset), asset_hash=asset_hash(asset), asset_hash_type=AssetHashType.CUSTOM
            ),
            memory_size=memory_mb,
            timeout=timeout,
            environment={"POWERTOOLS_SERVICE_NAME": f"blocklake-{function}", **environment},
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if traced else lambda_.Tracing.DISABLED,
            role=self.role,
            log_group=self.log_group,
        )
        if traced:
            acknowledge(
                self.role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments and PutTelemetryRecords accept no resource but '*'; "
                "Lambda active tracing adds exactly those two actions.",
            )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "The assets are built for Python 3.12 (pip --python-version 3.12, cp312 wheels); "
            "moving to a newer runtime is a deliberate change of the build and its tests.",
        )
