"""DuckDB extensions loaded from their installed wheels, never downloaded.

The ``duckdb-extension-<name>`` distributions ship the binary inside site-packages, at
``duckdb_extension_<name>/extensions/v<duckdb version>/<name>.duckdb_extension``; it is loaded by
path, so nothing is fetched at run time (Lambda has no route to the extension repository, and
a query must not depend on one). ``iceberg`` needs ``avro``, loaded first.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

ICEBERG = ("avro", "iceberg")
"""What ``iceberg_scan`` needs, in loading order."""


@cache
def extension_path(name: str) -> Path:
    """The ``<name>.duckdb_extension`` of the installed ``duckdb-extension-<name>`` built for
    this DuckDB; ``RuntimeError`` naming the distribution when it is missing or mismatched."""
    import duckdb

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"duckdb-extension-{name} is not installed")
    root = Path(spec.origin).parent
    wanted = f"v{duckdb.__version__}"
    candidates = sorted(root.rglob(f"{name}.duckdb_extension"))
    matching = [path for path in candidates if wanted in path.parts]
    if not (matching or candidates):
        raise RuntimeError(f"no {name}.duckdb_extension under {root}")
    if not matching:
        raise RuntimeError(
            f"duckdb-extension-{name} at {root} has {[str(p) for p in candidates]}, "
            f"none built for duckdb {duckdb.__version__}: pin both to the same version"
        )
    return matching[0]


def load_statements(*names: str) -> list[str]:
    """``LOAD '<path>'`` of each extension, in order."""
    return ["LOAD '" + str(extension_path(name)).replace("'", "''") + "'" for name in names]
