"""The Lambda code assets: built for arm64 Linux, complete, and within Lambda's size limit.

The first run downloads wheels from PyPI (about 20 s); later runs reuse ``.build/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import assets as assets_module
from infra.assets import (
    FUNCTION_DEPENDENCIES,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    build_asset,
    directory_size,
)

ELF_MACHINE_AARCH64 = 183


@pytest.fixture(scope="module")
def assets() -> dict[str, Path]:
    return {function: build_asset(function) for function in FUNCTION_DEPENDENCIES}


@pytest.mark.parametrize("function", list(FUNCTION_DEPENDENCIES))
def test_asset_fits_lambda_unzipped_limit(assets, function) -> None:
    size = directory_size(assets[function])
    print(f"{function}: {size / 2**20:.1f} MiB unzipped")
    # A margin for what the runtime adds and for the next dependency: fail before AWS does.
    assert size < LAMBDA_UNZIPPED_LIMIT_BYTES - 20 * 2**20


@pytest.mark.parametrize("function", list(FUNCTION_DEPENDENCIES))
def test_asset_holds_the_code_and_schemas_but_not_the_runtime_sdk(assets, function) -> None:
    asset = assets[function]
    assert (asset / "lambdas" / "__init__.py").is_file()
    assert (asset / "blocklake" / "format" / "schema.py").is_file()
    assert (asset / "blocklake" / "schemas" / "tables.toml").is_file()
    assert any((asset / "blocklake" / "schemas" / "metadata").glob("*.sql"))
    assert not (asset / "boto3").exists()
    assert not (asset / "botocore").exists()
    assert not list(asset.rglob("__pycache__"))


def test_ingest_carries_no_conversion_libraries(assets) -> None:
    assert (assets["ingest"] / "lz4").is_dir()
    assert not (assets["ingest"] / "pyarrow").exists()
    assert not (assets["ingest"] / "duckdb").exists()


def test_query_carries_its_engines_built_for_arm64(assets) -> None:
    query = assets["query"]
    for package in ("pyarrow", "duckdb", "pyathena", "sqlglot", "duckdb_extension_httpfs"):
        assert (query / package).is_dir(), package
    (duckdb_library,) = query.glob("_duckdb.cpython-312-*.so")
    header = duckdb_library.read_bytes()[:20]
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64


def test_a_second_build_is_served_from_the_cache(assets, monkeypatch) -> None:
    # The same path is returned whether cached or rebuilt: what tells them apart is that
    # nothing is installed or staged, and the directory is the one already built.
    def rebuilt(*args: object, **kwargs: object) -> None:
        pytest.fail("the second build did not come from the cache")

    monkeypatch.setattr(assets_module, "_pip_install", rebuilt)
    monkeypatch.setattr(assets_module, "_staging", rebuilt)
    before = assets["query"].stat()
    assert build_asset("query") == assets["query"]
    after = assets["query"].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
