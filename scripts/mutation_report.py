"""Kill rate per module from mutmut's results in mutants/ (see scripts/mutation.sh).

    .venv/bin/python scripts/mutation_report.py [module ...] [--survivors]

A mutant counts as killed if a test failed or timed out on it. Mutants listed in
bench/mutation-equivalent.md (a line starting with the mutant's name in backquotes) are
equivalent to the original (no test can tell them apart) and left out of the rate. Exits 1 if a
module is below the target (90 %).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path.cwd()  # the checkout mutmut ran in (scripts/mutation.sh cds there)
EQUIVALENT = Path(__file__).resolve().parents[1] / "bench" / "mutation-equivalent.md"
TARGET = 0.90
KILLED = {1, 3, 24, -24, 36, 152, 255}  # a test failed, or the mutant hung past its time limit


def equivalents() -> set[str]:
    if not EQUIVALENT.exists():
        return set()
    return set(re.findall(r"^- `([^`]+)`", EQUIVALENT.read_text(), re.MULTILINE))


def main(argv: list[str]) -> int:
    show = "--survivors" in argv
    wanted = [a.removesuffix(".py") for a in argv if not a.startswith("--")]
    skip = equivalents()
    failed = False
    print(f"{'module':<28} {'mutants':>7} {'equiv.':>6} {'killed':>6} {'survived':>8}  kill rate")
    for meta in sorted((ROOT / "mutants" / "src" / "blocklake").rglob("*.py.meta")):
        module = str(meta.relative_to(ROOT / "mutants" / "src" / "blocklake"))[: -len(".py.meta")]
        if wanted and module not in wanted:
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts: Counter[str] = Counter()
        survivors = []
        for name, code in codes.items():
            if name in skip:
                counts["equivalent"] += 1
            elif code is None:
                counts["not run"] += 1
            elif code in KILLED:
                counts["killed"] += 1
            else:
                counts["survived"] += 1
                survivors.append(name)
        checked = counts["killed"] + counts["survived"]
        rate = counts["killed"] / checked if checked else 0.0
        failed |= rate < TARGET
        note = f"  ({counts['not run']} not run yet)" if counts["not run"] else ""
        print(
            f"{module:<28} {len(codes):>7} {counts['equivalent']:>6} {counts['killed']:>6} "
            f"{counts['survived']:>8}  {rate:7.1%}{note}"
        )
        if show:
            for name in survivors:
                print(f"    survived: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
