"""The Iceberg catalog the settings describe, and the lake over it.

- Embedded (default): ``SqlCatalog`` on SQLite, ``<data dir>/catalog.db``, beside the lake.
- Self-hosted: ``SqlCatalog`` on the PostgreSQL of ``BLOCKLAKE_METADATA_URL`` (through psycopg
  3, which the metadata store uses already): the catalog's tables sit beside the metadata.
- Deployed (``BLOCKLAKE_GLUE_DATABASE`` set with a bucket): ``GlueCatalog``, so that Athena reads
  the same tables (Glue ``table_type=ICEBERG`` and ``metadata_location``); each tenant's tables
  are in the Glue database ``<glue database>_<tenant>``.

pyiceberg is imported here only, when a lake is opened (``import pyiceberg.catalog.sql`` takes
about 0.9 s): code that only reads does not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from blocklake.config import Settings
from blocklake.stores.blobs import BlobStore

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from blocklake.lake.iceberg import IcebergLake

CATALOG_NAME = "blocklake"


def lake_location(settings: Settings) -> str:
    """Where the catalog places tables: the bucket, or the data directory (absolute)."""
    if settings.bucket:
        return f"s3://{settings.bucket}"
    return str(settings.data_dir.resolve())


def namespace_prefix(settings: Settings) -> str:
    """Namespaces are ``<prefix><tenant>``: the Glue database's name and ``_`` when deployed."""
    return f"{settings.glue_database}_" if settings.glue_database else "blocklake_"


def open_catalog(settings: Settings, env: Mapping[str, str] = os.environ) -> Catalog:
    """The catalog for ``settings`` (see the module's docstring); ``ValueError`` naming the
    setting when a bucket has no catalog to go with it."""
    url = settings.metadata_url
    postgres = bool(url and url.startswith(("postgresql://", "postgres://")))
    if settings.bucket and settings.glue_database:
        from pyiceberg.catalog.glue import GlueCatalog

        # AWS's own variable for another endpoint (a test's moto): boto3 reads it for Glue,
        # pyiceberg's S3 file IO needs it said.
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        properties = {"s3.endpoint": endpoint} if endpoint else {}
        return GlueCatalog(CATALOG_NAME, warehouse=lake_location(settings), **properties)
    if settings.bucket and not postgres:
        raise ValueError(
            "BLOCKLAKE_BUCKET needs an Iceberg catalog: BLOCKLAKE_GLUE_DATABASE (AWS Glue), or "
            "BLOCKLAKE_METADATA_URL=postgresql://... (a SQL catalog in PostgreSQL)"
        )
    from pyiceberg.catalog.sql import SqlCatalog

    if postgres:
        rest = url.split("://", 1)[1]
        uri = f"postgresql+psycopg://{rest}"
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(settings.data_dir / 'catalog.db').resolve()}"
    return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=lake_location(settings))


def open_lake(settings: Settings, blobs: BlobStore) -> IcebergLake:
    """The lake of ``settings``, its fragments and records in ``blobs``."""
    from blocklake.lake.iceberg import IcebergLake

    return IcebergLake(
        open_catalog(settings),
        blobs,
        lake_location(settings),
        namespace_prefix(settings),
        settings.tables_retention_days,
    )
