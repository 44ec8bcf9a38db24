"""The SDK's whole CPU cost per event: record path, encoding, compression and upload.

    .venv/bin/python bench/sdk_cpu.py [--quick] [--events N]

For each kind of event, ``sdk.init`` against the real local server (``blocklake serve``, in
another process), one thread records N events (default 1,000,000) in a plain loop, then
``sdk.flush()`` waits until the server acknowledged every one. The figure is this process's CPU
time (``time.process_time``: every thread, GC on) from before the loop to the acknowledgement,
divided by N (by N spans for spans, each an enter and an exit). The same loop calling an empty
function is measured too: the part of each figure that is the loop and the call themselves.
The loop records far faster than any target rate (~2 M events/s), so the memory budget is
raised to 1 GiB: the figure is the cost of events delivered, none dropped (checked). Best of 3
repeats. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import time

from _common import Stopwatch, Verdicts, machine  # before blocklake: puts src/ on sys.path
from _sdk_server import API_KEY, real_server

from blocklake import sdk

PROPERTIES = {"player": "p42", "level": "7"}


def loops(n: int) -> dict[str, callable]:
    info, metric, scope = sdk.info, sdk.metric, sdk.SpanScope("bench span")

    def empty(message: str, target: str = "") -> None:
        pass

    def run_empty() -> None:
        for _ in range(n):
            empty("message", target="bench")

    def run_log() -> None:
        for _ in range(n):
            info("message", target="bench")

    def run_log_properties() -> None:
        for _ in range(n):
            info("message", target="bench", properties=PROPERTIES)

    def run_metric() -> None:
        for _ in range(n):
            metric("frame_time", 16.4, "ms")

    def run_span() -> None:
        for _ in range(n):
            with scope:
                pass

    return {
        "empty loop: a Python function call": run_empty,
        "log    sdk.info('message', target=...)": run_log,
        "log    + properties={2 entries}": run_log_properties,
        "metric sdk.metric('frame_time', 16.4, 'ms')": run_metric,
        "span   with scope: pass (enter + exit)": run_span,
    }


def measure(url: str, run, n: int) -> tuple[float, float, dict]:
    """(CPU ns per event, wall seconds, stats) of one repeat."""
    sdk.init(url, API_KEY, max_memory=1024**3)
    before = sdk.stats()
    started_cpu, started = time.process_time(), time.perf_counter()
    run()
    if not sdk.flush(timeout=300):
        raise RuntimeError(f"flush failed: {sdk.stats()}")
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    after = sdk.stats()
    sdk.shutdown()
    stats = {key: after[key] - before[key] for key in ("acknowledged", "blocks_sent")}
    stats["lost"] = sum(after["dropped"].values()) - sum(before["dropped"].values())
    return cpu / n * 1e9, wall, stats


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200,000 events, 2 repeats")
    parser.add_argument("--events", type=int, default=1_000_000)
    options = parser.parse_args()
    n = 200_000 if options.quick else options.events
    repeats = 2 if options.quick else 3
    watch = Stopwatch()
    print(machine())
    print(f"{n:,} events per kind, one recording thread, best of {repeats}; GC on")
    print("server: blocklake serve (another process); figures: this process's CPU time\n")
    results: dict[str, float] = {}
    with real_server() as url:
        print(f"{'kind':<46} {'CPU ns/event':>13} {'wall s':>7} {'blocks':>7}  lost")
        for name, run in loops(n).items():
            best, best_wall, stats = float("inf"), 0.0, {}
            for _ in range(repeats):
                if name.startswith("empty"):
                    started = time.process_time()
                    run()
                    ns, wall, stats = (time.process_time() - started) / n * 1e9, 0.0, {}
                else:
                    ns, wall, stats = measure(url, run, n)
                if ns < best:
                    best, best_wall = ns, wall
            results[name] = best
            lost = stats.get("lost", 0)
            blocks = stats.get("blocks_sent", "")
            print(f"{name:<46} {best:>13.0f} {best_wall:>7.2f} {blocks!s:>7}  {lost}")
    verdicts = Verdicts()
    by_kind = dict(zip(("empty", "log", "props", "metric", "span"), results.values(), strict=True))
    verdicts.check(
        "log: CPU per event", f"{by_kind['log']:.0f} ns", "<= 1000 ns", by_kind["log"] <= 1000
    )
    verdicts.check(
        "metric: CPU per event",
        f"{by_kind['metric']:.0f} ns",
        "<= 1000 ns",
        by_kind["metric"] <= 1000,
    )
    verdicts.check(
        "span: CPU per span", f"{by_kind['span']:.0f} ns", "<= 1500 ns", by_kind["span"] <= 1500
    )
    verdicts.check("log + 2 properties (info)", f"{by_kind['props']:.0f} ns", "(info)", True)
    verdicts.print()
    print(f"\ntook {watch}")
    return verdicts.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
