"""A bounded run of each coverage-guided fuzzer over the committed corpus (tests/fuzz/corpus):
no input may crash the decoder or the ingest-then-convert path. Longer runs: see
``tests.fuzz.fuzz_blocks``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
RUNS = {"decoder": 20_000, "ingest": 3_000}


@pytest.mark.parametrize("target", list(RUNS))
def test_bounded_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    found = tmp_path / "found"  # new inputs go here, never into the committed corpus
    found.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_blocks",
            target,
            f"-runs={RUNS[target]}",
            "-max_total_time=60",
            "-max_len=65536",
            "-seed=1",
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            str(found),
            str(CORPUS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tail = run.stderr[-3000:]
    assert run.returncode == 0, tail
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done and int(done.group(1)) == RUNS[target], tail
    assert not list(tmp_path.glob("crash-*")), tail
