#!/usr/bin/env bash
# Creates .venv and installs blocklake with the extras named (default: dev, everything needed to
# run and test it; pinned in pyproject.toml). Safe to run again: it only installs what is missing.
#   bash scripts/setup.sh          # dev: tests, lint, deploy tooling, all adapters
#   bash scripts/setup.sh lake     # the local lake only: what `blocklake demo` and `serve` need
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.9.16
.venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[${extras}]"
