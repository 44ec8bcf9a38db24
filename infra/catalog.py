"""The Glue Data Catalog's part in the lake, and the Athena workgroup.

The lake's tables are Apache Iceberg tables, one set per tenant: the committer (the ETL code on
its own function, ``blocklake.lake``) registers a tenant's Glue database
``<database_name>_<tenant>`` and its tables on the tenant's first commit, through pyiceberg's
``GlueCatalog``: each Glue table has ``table_type=ICEBERG`` and the ``metadata_location`` of its
current snapshot, which is what Athena reads (and what the query function reads, with DuckDB).
The stack cannot declare them (tenants come and go without a deployment); it grants the
committer the right to create and update exactly those databases and tables, and the query
function the right to read them.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge
from infra.storage import ATHENA_RESULTS_PREFIX

GLUE_READ_ACTIONS = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables"]
"""What reading a tenant's tables asks of Glue (the query function; Athena with its rights)."""
GLUE_WRITE_ACTIONS = [
    *GLUE_READ_ACTIONS,
    "glue:GetDatabases",
    "glue:CreateDatabase",
    "glue:CreateTable",
    "glue:UpdateTable",
]
"""What the committer asks of Glue: pyiceberg's GlueCatalog creating and committing tables."""


class QueryCatalog(Construct):
    def __init__(
        self, scope: Construct, id: str, *, bucket: s3.IBucket, bytes_scanned_per_query: int
    ) -> None:
        super().__init__(scope, id)
        self.database_name = Stack.of(self).stack_name.lower().replace("-", "_")
        """The prefix of every tenant's Glue database (``BLOCKLAKE_GLUE_DATABASE``)."""

        self.workgroup = athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=self.database_name,
            description="blocklake queries: results in the lake bucket, scan capped per query",
            recursive_delete_option=True,
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_per_query,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="AUTO"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )
        self.workgroup_name = self.workgroup.name
        self.workgroup_arn = Stack.of(self).format_arn(
            service="athena", resource="workgroup", resource_name=self.workgroup.name
        )
        stack = Stack.of(self)
        self.catalog_arn = stack.format_arn(service="glue", resource="catalog")
        self.tenant_database_arns = [
            stack.format_arn(
                service="glue", resource="database", resource_name=f"{self.database_name}_*"
            )
        ]
        self.tenant_table_arns = [
            stack.format_arn(
                service="glue", resource="table", resource_name=f"{self.database_name}_*/*"
            )
        ]
        """Every tenant's Glue database and tables, and nothing else of the account's."""

    def _acknowledge(self, role: iam.IRole) -> None:
        arn = "arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>"
        for resource in (f"database/{self.database_name}_*", f"table/{self.database_name}_*/*"):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{arn}:{resource}]",
                "Each tenant's Glue database is created at run time by its first commit "
                f"({self.database_name}_<tenant>); the role is limited to those databases.",
            )

    def grant_read(self, role: iam.IRole) -> None:
        self._acknowledge(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=GLUE_READ_ACTIONS,
                resources=[
                    self.catalog_arn,
                    *self.tenant_database_arns,
                    *self.tenant_table_arns,
                ],
            )
        )

    def grant_commit(self, role: iam.IRole) -> None:
        self._acknowledge(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=GLUE_WRITE_ACTIONS,
                resources=[
                    self.catalog_arn,
                    *self.tenant_database_arns,
                    *self.tenant_table_arns,
                ],
            )
        )
