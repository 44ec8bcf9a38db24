"""``on_event`` handler for CDK's ``custom_resources.Provider``: applies the migrations of
``schemas/metadata/`` through the RDS Data API on Create and Update.

Delete does nothing: dropping the stack must not drop the metadata (the cluster keeps a final
snapshot). Waking a paused cluster is the Data API executor's job.
"""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    properties = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or f"migrations:{properties['ClusterArn']}"
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": physical_id}
    # Imported here: Delete needs neither, and the module loads without the Data API adapter.
    from blocklake.stores.data_api import DataApiExecutor
    from blocklake.stores.metadata import SqlMetadataStore

    executor = DataApiExecutor(
        cluster_arn=properties["ClusterArn"],
        secret_arn=properties["SecretArn"],
        database=properties["Database"],
    )
    applied = SqlMetadataStore(executor).migrate()  # also creates the coming months' partitions
    return {
        "PhysicalResourceId": physical_id,
        "Data": {"Applied": ",".join(str(version) for version in applied)},
    }
