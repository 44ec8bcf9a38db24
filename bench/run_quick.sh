#!/usr/bin/env bash
# Every benchmark's --quick mode, one after the other (CI runs this from .ci/run). Each checks
# its targets (same-run ratios, chosen with margin for a shared 2-core box) and exits 1 if one
# fails; this script runs them all, then fails if any did, naming them.
set -uo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
failed=()
for bench in sdk_record sdk_loss sdk_memory etl_throughput query_isolation query_latency duckdb_s3 attachments span_tree; do
    echo "=== bench/$bench.py --quick"
    started=$SECONDS
    if ! "$python" "bench/$bench.py" --quick; then
        failed+=("$bench")
    fi
    echo "=== $bench: $((SECONDS - started)) s"
done
if ((${#failed[@]})); then
    echo "benchmarks that missed a target: ${failed[*]}" >&2
    exit 1
fi
