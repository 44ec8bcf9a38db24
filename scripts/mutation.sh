#!/usr/bin/env bash
# Mutation testing of the core (issue 16) with mutmut (pinned in the dev extra; configured in
# pyproject.toml [tool.mutmut]: the modules, and the test directories that run them in-process).
#
#   bash scripts/mutation.sh                      # every configured module
#   bash scripts/mutation.sh format/check sdk/stats   # some of them (paths under src/blocklake)
#
# mutmut copies the tree to mutants/, runs the tests once to learn which tests reach which
# function, then runs, for each mutant, only those tests. Results are kept in mutants/ (a rerun
# checks only new or changed mutants). Then this prints the kill rate per module: killed (or
# timed out) out of all mutants but those listed as equivalent, with their reasons, in
# bench/mutation-equivalent.md. MUTATION_CHILDREN (default 2) bounds the parallel test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
children=${MUTATION_CHILDREN:-2}
patterns=()
for module in "$@"; do
    module=${module%.py}
    patterns+=("blocklake.${module//\//.}.*")
done
.venv/bin/mutmut run --max-children "$children" "${patterns[@]}" | tr '\r' '\n' | grep -v "^⠋\|^⠙\|^⠹\|^⠸\|^⠼\|^⠴\|^⠦\|^⠧\|^⠇\|^⠏" | tail -n 5 || true
exec .venv/bin/python scripts/mutation_report.py "$@"
