"""Conversion memory stays within a stated bound on the worst blocks (issue 10, item 2), as
docs/architecture.md states it: peak growth of the resident set at most
``10 x (decompressed payload + map text) + 32 MiB`` for a block the budget accepts, and at most
32 MiB for an amplifying block, which conversion refuses before expanding anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.handlers.conversion_memory import ACCEPTED, CASES

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
PARALLEL = 4


def test_conversion_peak_memory_on_the_worst_blocks() -> None:
    # One process per case (an allocator keeps what an earlier case freed), a few at a time.
    figures = {}
    cases = list(CASES)
    for start in range(0, len(cases), PARALLEL):
        children = {
            case: subprocess.Popen(
                [sys.executable, "-m", "tests.handlers.conversion_memory", case],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for case in cases[start : start + PARALLEL]
        }
        for case, child in children.items():
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0, case
            figures[case] = json.loads(out)
    for case, figure in figures.items():
        peak = figure["peak_growth_bytes"]
        if case in ACCEPTED:
            assert figure["outcome"].startswith("converted"), figure
            bound = 10 * (figure["payload_bytes"] + figure["map_bytes"]) + 32 * MIB
        else:
            assert figure["outcome"].startswith("refused"), figure
            bound = 32 * MIB
        assert peak <= bound, f"{case}: {peak / MIB:.0f} MiB, over {bound / MIB:.0f} MiB"
