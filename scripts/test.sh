#!/usr/bin/env bash
# Sets up, then lints and runs the whole test suite (PostgreSQL must answer at 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c 'import psycopg; psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=5).close()' 2>/dev/null; then
    echo "error: PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, database test)." >&2
    echo "The metadata-store tests run against a real PostgreSQL; start it and run this again." >&2
    exit 1
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest -n 2 --dist loadfile "$@"
