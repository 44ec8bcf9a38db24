"""Aurora Serverless v2 PostgreSQL for the metadata, reached only through the RDS Data API.

The Lambdas call the Data API over HTTPS, so none of them runs in the VPC: the cluster sits in
isolated subnets with no NAT gateway, and at 0 ACU it pauses when idle and costs storage only.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra.nag import acknowledge

DATABASE_NAME = "blocklake"
ENGINE_VERSION = rds.AuroraPostgresEngineVersion.VER_16_6
"""Scaling to 0 ACU needs Aurora PostgreSQL 16.3 or later (CDK does not check the version)."""


class MetadataDatabase(Construct):
    def __init__(self, scope: Construct, id: str, *, max_capacity: float) -> None:
        super().__init__(scope, id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
        )
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSION),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=0,
            serverless_v2_max_capacity=max_capacity,
            serverless_v2_auto_pause_duration=Duration.minutes(10),
            enable_data_api=True,
            credentials=rds.Credentials.from_generated_secret("blocklake_admin"),
            default_database_name=DATABASE_NAME,
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            storage_encrypted=True,
            backup=rds.BackupProps(retention=Duration.days(7)),
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        self.secret = self.cluster.secret
        acknowledge(
            self.vpc,
            "AwsSolutions-VPC7",
            "No compute runs in this VPC: it only holds Aurora's network interfaces, which the "
            "Lambdas never reach over the network (they use the Data API), so flow logs would "
            "record nothing of use.",
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-SMG4",
            "Only the Data API uses this secret, on behalf of the Lambdas; rotating it needs a "
            "rotation Lambda inside the VPC with a NAT gateway or endpoints, the fixed cost this "
            "design avoids. Rotate by hand with `aws secretsmanager rotate-secret` if required.",
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS6",
            "IAM database authentication does not apply to the Data API, which authenticates "
            "with the Secrets Manager secret and IAM permissions on the cluster.",
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS10",
            "Deletion protection would make `cdk destroy` fail; the removal policy takes a final "
            "snapshot instead, so the metadata survives a teardown.",
        )
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS11",
            "The cluster accepts no network ingress at all (Data API only), so moving it off the "
            "default port would hide nothing.",
        )
