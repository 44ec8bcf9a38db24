"""Who may import whom (docs/architecture.md): the data walks one way, never back up the flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src" / "blocklake"

ALLOWED = {
    "format": set(),
    "sdk": {"format"},
    "stores": {"format", "config"},
    "ingest": {"format", "stores", "errors"},
    "etl": {"format", "stores", "errors", "lake"},
    "lake": {"format", "stores", "config"},
    "query": {"format", "stores", "errors", "etl", "lake", "config"},
    "apigw": {"errors", "stores"},
    "attachments": {"errors", "stores", "format"},
    "config": set(),
    "errors": set(),
    "auth": set(),
    "client": set(),
}
"""Top-level parts of ``blocklake`` each core part may import; the outer ring (server, cli, demo)
may import anything, and only it may import ``lambdas``."""


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def part_of(path: Path) -> str:
    relative = path.relative_to(CORE)
    return relative.parts[0].removesuffix(".py")


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_core_imports_only_what_it_may(part: str) -> None:
    files = list((CORE / part).rglob("*.py")) if (CORE / part).is_dir() else [CORE / f"{part}.py"]
    assert files
    for path in files:
        for name in imports_of(path):
            if name.startswith("lambdas"):
                pytest.fail(
                    f"{path.relative_to(ROOT)} imports {name}: the core never imports handlers"
                )
            if name.startswith("blocklake."):
                target = name.split(".")[1]
                assert target == part or target in ALLOWED[part], (
                    f"{path.relative_to(ROOT)} imports {name}, outside what {part} may import"
                )


def test_sdk_uses_only_stdlib_lz4_and_the_encoder() -> None:
    third_party = {"pyarrow", "duckdb", "boto3", "botocore", "numpy", "aws_lambda_powertools"}
    sdk_files = list((CORE / "sdk").rglob("*.py"))
    format_used = {
        "blocklake.format.check",  # the server's budget for one block: stdlib and lz4 only
        "blocklake.format.encode",
        "blocklake.format.header",
        "blocklake.format.media_type",  # what an attachment's fields must be: stdlib only
        "blocklake.format.schema",
    }
    for path in sdk_files:
        for name in imports_of(path):
            assert name.split(".")[0] not in third_party, f"{path.name} imports {name}"
            if name.startswith("blocklake.format"):
                assert name.startswith(tuple(format_used)), f"{path.name} imports {name} (pyarrow)"
    for module in format_used:
        path = CORE / "format" / f"{module.rsplit('.', 1)[1]}.py"
        assert not {n.split(".")[0] for n in imports_of(path)} & third_party, path.name


def test_infra_reads_schemas_but_imports_no_runtime_code() -> None:
    for path in (ROOT / "infra").rglob("*.py"):
        for name in imports_of(path):
            if name.startswith(("blocklake", "lambdas")):
                assert name.startswith("blocklake.format.schema"), (
                    f"{path.relative_to(ROOT)}: {name}"
                )
