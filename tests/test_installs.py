"""Installs that fit their purpose: the demo, serve and query run on the ``lake`` extra alone, and
the README's first command installs only that."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_THE_LOCAL_LAKE = (
    "boto3",
    "botocore",
    "psycopg",
    "aws_xray_sdk",
    "pyathena",
    "sqlglot",
    "duckdb_extension_httpfs",
    "aws_cdk",
    "cdk_nag",
    "moto",
    "pytest",
    "hypothesis",
)
BLOCKER = f"""
import sys
blocked = {NOT_IN_THE_LOCAL_LAKE!r}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{{name}} is not in the lake extra")

sys.meta_path.insert(0, Blocker())
sys.argv = ["blocklake", "demo", "--threads", "1", "--requests", "5", "--data-dir", sys.argv[1]]
from blocklake.cli import app
app()
"""


def test_the_demo_runs_without_aws_deploy_or_test_packages(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Slowest spans" in result.stdout


def test_the_lake_extra_holds_none_of_them_and_the_demo_installs_only_it() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    lake = " ".join(extras["lake"]).replace("-", "_")
    assert not [name for name in NOT_IN_THE_LOCAL_LAKE if name in lake]
    assert "bash scripts/setup.sh lake" in (ROOT / "scripts" / "demo.sh").read_text()


def test_the_command_without_the_lake_extra_says_what_to_install() -> None:
    script = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'typer':\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from blocklake.command import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'blocklake[lake]'" in result.stderr and "Traceback" not in result.stderr
