"""Glue tables over ``tables/`` with partition projection, and the Athena workgroup.

The tables come from ``schemas/tables.toml``: the same definitions the ETL writes. Partition
projection computes partitions from the query instead of a crawler or ``MSCK REPAIR``: the tenant
is injected (every query must name it, which also keeps tenants apart), the date is a range up to
tomorrow, the hour is 00-23.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from blocklake.format import schema
from infra.storage import ATHENA_RESULTS_PREFIX, TABLES_PREFIX

GLUE_TYPES = {
    "string": "string",
    "int64": "bigint",
    "int32": "int",
    "float64": "double",
    "timestamp": "timestamp",
    "map<string,string>": "map<string,string>",
    "map<string,float64>": "map<string,double>",
    "list<string>": "array<string>",
}

FIRST_DATE = "2020-01-01"
PARTITION_PROJECTION = {
    "tenant": {"type": "injected"},
    "date": {
        "type": "date",
        "format": "yyyy-MM-dd",
        # Tomorrow too: a client whose clock runs ahead must not see its data vanish.
        "range": f"{FIRST_DATE},NOW+1DAYS",
        "interval": "1",
        "interval.unit": "DAYS",
    },
    "hour": {"type": "integer", "range": "0,23", "digits": "2"},
}


def projection_parameters(bucket_name: str, table: str) -> dict[str, str]:
    keys = schema.partition_keys()
    if set(keys) != set(PARTITION_PROJECTION):
        raise ValueError(f"partition keys {keys} have no projection defined here")
    location = f"s3://{bucket_name}/{TABLES_PREFIX}{table}/"
    template = "/".join(f"{key}=${{{key}}}" for key in keys)
    parameters = {
        "classification": "parquet",
        "projection.enabled": "true",
        "storage.location.template": f"{location}{template}/",
    }
    for key in keys:
        for name, value in PARTITION_PROJECTION[key].items():
            parameters[f"projection.{key}.{name}"] = value
    return parameters


class QueryCatalog(Construct):
    def __init__(
        self, scope: Construct, id: str, *, bucket: s3.IBucket, bytes_scanned_per_query: int
    ) -> None:
        super().__init__(scope, id)
        self.database_name = Stack.of(self).stack_name.lower().replace("-", "_")
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="blocklake lake tables (Parquet)"
            ),
        )
        self.table_names = list(schema.tables())
        for table in schema.tables().values():
            glue_table = glue.CfnTable(
                self,
                f"Table-{table.name}",
                catalog_id=Aws.ACCOUNT_ID,
                database_name=self.database_name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=table.name,
                    description=table.doc,
                    table_type="EXTERNAL_TABLE",
                    parameters=projection_parameters(bucket.bucket_name, table.name),
                    partition_keys=[
                        glue.CfnTable.ColumnProperty(name=key, type="string")
                        for key in schema.partition_keys()
                    ],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=f"s3://{bucket.bucket_name}/{TABLES_PREFIX}{table.name}/",
                        columns=[
                            glue.CfnTable.ColumnProperty(name=c.name, type=GLUE_TYPES[c.type])
                            for c in table.columns
                        ],
                        input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                        ),
                    ),
                ),
            )
            glue_table.node.add_dependency(database)

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
        self.database_arn = Stack.of(self).format_arn(
            service="glue", resource="database", resource_name=self.database_name
        )
        self.catalog_arn = Stack.of(self).format_arn(service="glue", resource="catalog")
        self.table_arns = [
            Stack.of(self).format_arn(
                service="glue", resource="table", resource_name=f"{self.database_name}/{name}"
            )
            for name in self.table_names
        ]
