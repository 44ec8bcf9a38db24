#!/usr/bin/env bash
# Creates .venv and installs blocklake with everything needed to run and test it (pinned in
# pyproject.toml). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.9.16
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[dev]'
