"""Lambda code assets, built with pip for arm64 Lambda on any machine, without Docker.

pip downloads the Linux aarch64 wheels of each function's dependencies into a directory, and
the project's code is copied beside them: ``blocklake/`` (with ``schemas/`` inside, where
``blocklake.format.schema`` looks when installed) and ``lambdas/``. Builds are cached under
``.build/`` keyed by a hash of their inputs: dependencies once per pin set, the finished asset
once per source change, so a repeated synth copies nothing and downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = PROJECT_ROOT / ".build"

FUNCTION_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "ingest": ("lz4", "aws-lambda-powertools", "aws-xray-sdk"),
    "etl": (
        "lz4",
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "pyarrow",
        "pyiceberg",
        "pyiceberg-core",
    ),
    "committer": (
        "lz4",
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "pyarrow",
        "pyiceberg",
        "pyiceberg-core",
    ),
    "query": (
        "lz4",
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "pyarrow",
        "duckdb",
        "duckdb-extension-httpfs",
        "duckdb-extension-iceberg",
        "duckdb-extension-avro",
        "pyathena",
        "sqlglot",
    ),
    "authorizer": (),
    "migrate": (),
}
"""Distributions each function imports, pinned from pyproject.toml: ingest never converts, so it
carries neither pyarrow nor duckdb; the ETL function (conversion, and the committer: commits,
compaction, expiry) writes Iceberg tables with pyiceberg and never runs DuckDB; the query
function plans Iceberg reads from the tables' metadata with DuckDB itself
(``blocklake.lake.reader``: the Glue table's metadata location, ``read_avro`` of the
manifests), so it carries the iceberg and avro extensions but not pyiceberg (about 60 MB with
its dependencies: the asset would pass Lambda's 250 MB); the metadata store reaches Aurora
through boto3's Data API client, so no function needs psycopg; typer and rich serve the CLI
only."""

PIP_PLATFORM_ARGS = (
    "--platform=manylinux2014_aarch64",
    # pyarrow publishes its aarch64 wheels for glibc 2.28 only; Lambda's Amazon Linux 2023
    # has glibc 2.34, so both tags run there.
    "--platform=manylinux_2_28_aarch64",
    "--implementation=cp",
    "--python-version=3.12",
    "--only-binary=:all:",
)

PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath")
"""Installed as dependencies of pyathena, but the Lambda runtime ships them already."""

PRUNED = (
    "bin",
    # Arrow Flight (RPC) and the C++ test harness are never imported by a handler; the headers,
    # Cython sources and tests are for building and testing pyarrow itself.
    "pyarrow/libarrow_flight.so.*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_flight.*.so",
    "pyarrow/flight.py",
    "pyarrow/_pyarrow_cpp_tests.*.so",
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/tests",
    "pyarrow/*.pyx",
    "pyarrow/*.pxd",
    # pyarrow's ORC reader and its Azure, GCS and HDFS filesystems: never used (each is imported
    # only when asked for). The extension modules link libarrow_python.so.2600 (its soname):
    # the unversioned and fully versioned copies are for building against pyarrow.
    "pyarrow/_orc.*.so",
    "pyarrow/_dataset_orc.*.so",
    "pyarrow/_azurefs.*.so",
    "pyarrow/_gcsfs.*.so",
    "pyarrow/_hdfs.*.so",
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.*.*.*",
    "pyarrow/libarrow_python_parquet_encryption.so",
    "pyarrow/libarrow_python_parquet_encryption.so.*.*.*",
    # lz4's frame format: the lake uses lz4 blocks only.
    "lz4/frame",
    # pyathena's cursors for pandas, polars, asyncio and its SQLAlchemy dialect: the query
    # engine uses the plain cursor.
    "pyathena/pandas",
    "pyathena/polars",
    "pyathena/aio",
    "pyathena/sqlalchemy",
    # pyiceberg's command line (click, rich and what rich pulls in): never run in a Lambda.
    "pyiceberg/cli",
    "click",
    "rich",
    "pygments",
    "markdown_it",
    "mdurl",
    # zstandard ships a C backend (used) and a CFFI one (a fallback): the second goes.
    "zstandard/_cffi.*.so",
    "zstandard/backend_cffi.py",
)
PRUNED_BY_FUNCTION: dict[str, tuple[str, ...]] = {
    # DuckDB reads S3 itself (httpfs): pyarrow's S3 filesystem is never loaded in queries.
    "query": ("pyarrow/libarrow_s3.so.*", "pyarrow/_s3fs.*.so"),
}

BUILDER_VERSION = "1"
"""Part of every cache key: bump it when the build steps change."""

LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
"""Lambda's limit on a function's unzipped code plus its layers."""


def pinned_requirements(
    names: Iterable[str], pyproject: Path = PROJECT_ROOT / "pyproject.toml"
) -> list[str]:
    """The requirement lines for ``names`` as pinned in pyproject.toml (base, ``lake`` and
    ``aws``), so a version bump there reaches the Lambdas without a second list to keep in step."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    pins = {
        _canonical(re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0]): requirement
        for requirement in [*project["dependencies"], *extras["lake"], *extras["aws"]]
        if not requirement.startswith("blocklake")
    }
    missing = [name for name in names if _canonical(name) not in pins]
    if missing:
        raise KeyError(f"not pinned in pyproject.toml (dependencies, lake or aws): {missing}")
    return sorted(pins[_canonical(name)] for name in names)


def build_asset(function: str) -> Path:
    """The directory to deploy as ``function``'s code, built now unless cached."""
    requirements = pinned_requirements(FUNCTION_DEPENDENCIES[function])
    dependencies = _dependencies_dir(requirements, PRUNED_BY_FUNCTION.get(function, ()))
    sources = _source_files()
    key = _digest([BUILDER_VERSION, dependencies.name, *_file_digests(sources)])
    asset = BUILD_DIR / "assets" / f"{function}-{key}"
    if not asset.is_dir():
        with _staging(asset) as staging:
            shutil.copytree(dependencies, staging, copy_function=_link_or_copy, dirs_exist_ok=True)
            for source, relative in sources:
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        _remove_stale(asset)
    return asset


def asset_hash(asset: Path) -> str:
    """The cache key in the directory name: it already covers every input, so CDK need not
    hash hundreds of megabytes again on each synth."""
    return asset.name.rsplit("-", 1)[1]


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _dependencies_dir(requirements: list[str], pruned: tuple[str, ...]) -> Path:
    key = _digest([BUILDER_VERSION, *PIP_PLATFORM_ARGS, *requirements, *PRUNED, *pruned])
    target = BUILD_DIR / "deps" / key
    if not target.is_dir():
        with _staging(target) as staging:
            if requirements:
                _pip_install(requirements, staging, (*PRUNED, *pruned))
    return target


def _pip_install(requirements: list[str], target: Path, pruned: tuple[str, ...]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
    command += [*PIP_PLATFORM_ARGS, "--target", str(target), *requirements]
    subprocess.run(command, check=True)
    for name in PROVIDED_BY_RUNTIME:
        for path in [target / name, *target.glob(f"{name}-*.dist-info")]:
            shutil.rmtree(path, ignore_errors=True)
    for pattern in pruned:
        for path in target.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _source_files() -> list[tuple[Path, Path]]:
    """(file, path inside the asset) for the project's own code: the handler strings are
    ``lambdas.<function>.handler.handler``, and ``blocklake`` finds ``schemas/`` beside it."""
    trees = [
        (PROJECT_ROOT / "src" / "blocklake", Path("blocklake")),
        (PROJECT_ROOT / "lambdas", Path("lambdas")),
        (PROJECT_ROOT / "schemas", Path("blocklake") / "schemas"),
    ]
    return [
        (file, inside / file.relative_to(root))
        for root, inside in trees
        for file in sorted(root.rglob("*"))
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc"
    ]


def _file_digests(sources: list[tuple[Path, Path]]) -> list[str]:
    return [
        f"{relative}:{hashlib.sha256(file.read_bytes()).hexdigest()}" for file, relative in sources
    ]


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _staging:
    """A sibling temporary directory renamed into place only once complete, so an interrupted
    build leaves no half-filled cache entry and concurrent builds (pytest-xdist) do not clash."""

    def __init__(self, target: Path) -> None:
        self._target = target

    def __enter__(self) -> Path:
        self._target.parent.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(dir=self._target.parent, prefix=".tmp-"))
        return self._staging

    def __exit__(self, error_type: object, *_: object) -> None:
        if error_type is None:
            try:
                self._staging.rename(self._target)
                return
            except OSError:
                if not self._target.is_dir():  # not lost to a concurrent build: a real error
                    raise
        shutil.rmtree(self._staging, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    """Hard links share the cached dependencies between assets without copying them."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _remove_stale(current: Path) -> None:
    function = current.name.rsplit("-", 1)[0]
    for old in current.parent.glob(f"{function}-*"):
        if old != current and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
