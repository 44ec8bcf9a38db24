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


def open_catalog(settings: Settings) -> Catalog:
    """The catalog for ``settings`` (see the module's docstring)."""
    if settings.bucket and settings.glue_database:
        from pyiceberg.catalog.glue import GlueCatalog

        return GlueCatalog(CATALOG_NAME, warehouse=lake_location(settings))
    from pyiceberg.catalog.sql import SqlCatalog

    url = settings.metadata_url
    if url and url.startswith(("postgresql://", "postgres://")):
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
        open_catalog(settings), blobs, lake_location(settings), namespace_prefix(settings)
    )
