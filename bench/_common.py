# ruff: noqa: E501  (tables of figures read better on one line)
"""Shared by the benchmarks: the machine description, best-of-N timing and the verdict table.

Every figure a benchmark prints is a ratio measured in the same run, on the same machine, best
(minimum) of several repeats, because the machines we run on are shared and noisy.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    try:
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load n/a"
    return (
        f"machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model}, "
        f"{load}; Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}"
    )


def best_of(
    run: Callable[[], float], repeats: int, before: Callable[[], None] | None = None
) -> float:
    """Minimum over ``repeats`` of ``run()`` (which returns one measurement); ``before`` runs
    untimed ahead of each repeat (to clear buffers)."""
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        best = min(best, run())
    return best


class Verdicts:
    """Targets checked in this run; ``exit_code`` is 1 if any failed."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool]] = []

    def check(self, name: str, measured: str, target: str, ok: bool) -> None:
        self.rows.append((name, measured, target, ok))

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        mwidth = max(len(r[1]) for r in self.rows)
        twidth = max(len(r[2]) for r in self.rows)
        print()
        print(f"{'target':<{width}}  {'measured':>{mwidth}}  {'needed':<{twidth}}  verdict")
        for name, measured, target, ok in self.rows:
            print(
                f"{name:<{width}}  {measured:>{mwidth}}  {target:<{twidth}}  {'PASS' if ok else 'FAIL'}"
            )

    @property
    def exit_code(self) -> int:
        return 0 if all(r[3] for r in self.rows) else 1


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.start:.1f} s"
