#!/usr/bin/env bash
# Sets up the local lake only (no AWS, deploy or test tooling), then records a multi-threaded sample service, ingests, converts and queries it on the
# embedded defaults (a temporary data directory and SQLite) and prints the results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh lake
exec .venv/bin/blocklake demo "$@"
