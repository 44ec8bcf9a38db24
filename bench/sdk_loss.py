# ruff: noqa: E501  (tables of figures read better on one line)
"""Events lost by the SDK at default settings, in the three situations of issue 11.

    .venv/bin/python bench/sdk_loss.py [--quick]

Against the real local server (``blocklake serve``, another process):
  burst      4 threads record 200,000 events (half logs, a third metrics, the rest nested
             spans, 2 events each) as fast as they can;
  sustained  one thread records 300,000 events/s (same mix) for 10 s (3 s with --quick), paced
             every 10 ms;
  outage     one thread logs 25,000 events/s for 8 s (4 s) while a proxy in front of the server
             (another process) answers 503 with ``Retry-After: 1`` for the first 6 s (3 s).
Then ``sdk.flush()``; the figures are ``sdk.stats()``: recorded, acknowledged by the server,
dropped by reason. Exits 1 if an event is lost or the counters do not add up.
"""

from __future__ import annotations

import argparse
import threading
import time

from _common import Stopwatch, Verdicts, machine  # before blocklake: puts src/ on sys.path
from _sdk_server import API_KEY, outage, real_server

from blocklake import sdk

MIX = 12
"""Events a round records on average: 6 logs, 4 metrics, and every other round a span in a
span (4 events): half logs, a third metrics, the rest nested spans, as in the issue."""


def mix(rounds: int, worker: int, outer: sdk.SpanScope, inner: sdk.SpanScope) -> None:
    info, metric = sdk.info, sdk.metric
    for i in range(rounds):
        for k in range(6):
            info("burst message", target="bench", properties=None if k else {"i": str(i)})
        for _ in range(4):
            metric("bench.value", float(i), "n")
        if i % 2:
            with outer, inner:
                pass


def burst() -> tuple[str, float]:
    per_thread = 2 * (200_000 // 4 // MIX // 2)
    outer, inner = sdk.SpanScope("outer"), sdk.SpanScope("inner")
    threads = [threading.Thread(target=mix, args=(per_thread, w, outer, inner)) for w in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"{4 * per_thread * MIX:,} events, 4 threads", time.perf_counter() - started


def paced(rate: int, seconds: float, record) -> tuple[int, float]:
    """Calls ``record(k)`` so that about ``rate`` events a second are recorded."""
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(min(elapsed + 0.01, seconds) * rate)
        if due > done:
            record(due - done)
            done = due
        time.sleep(max(0.0, 0.01 - (time.perf_counter() - started - elapsed)))
    return done, time.perf_counter() - started


def sustained(seconds: float) -> tuple[str, float]:
    outer, inner = sdk.SpanScope("outer"), sdk.SpanScope("inner")
    done, took = paced(300_000, seconds, lambda k: mix(-(-k // MIX), 0, outer, inner))
    return f"~{done:,} events at 300,000/s, 1 thread", took


def logs_during_outage(seconds: float) -> tuple[str, float]:
    def record(k: int) -> None:
        for _ in range(k):
            sdk.info("outage message", target="bench")

    done, took = paced(25_000, seconds, record)
    return f"{done:,} logs at 25,000/s", took


def run(name: str, url: str, scenario, verdicts: Verdicts) -> None:
    sdk.init(url, API_KEY)
    label, took = scenario()
    flushed = sdk.flush(timeout=120)
    stats = sdk.stats()
    sdk.shutdown()
    dropped = {reason: n for reason, n in stats["dropped"].items() if n}
    lost = sum(stats["dropped"].values())
    print(
        f"{name:<10} {label:<38} {took:>6.2f} s  recorded {stats['recorded']:>10,}  "
        f"acknowledged {stats['acknowledged']:>10,}  retries {stats['retries']:>3}  "
        f"dropped {dropped or 0}"
    )
    adds_up = stats["recorded"] == stats["acknowledged"] + lost + stats["pending"]
    verdicts.check(f"{name}: events lost", f"{lost:,}", "0", lost == 0 and flushed)
    verdicts.check(
        f"{name}: recorded = acknowledged + dropped", "yes" if adds_up else "no", "yes", adds_up
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 s sustained, 3 s outage")
    options = parser.parse_args()
    sustained_s, outage_s, logging_s = (3.0, 3.0, 4.0) if options.quick else (10.0, 6.0, 8.0)
    watch = Stopwatch()
    print(machine())
    print(
        "default settings (64 MiB budget, blocks <= 1 MiB); server: blocklake serve, another process\n"
    )
    verdicts = Verdicts()
    with real_server() as url:
        run("burst", url, burst, verdicts)
        run("sustained", url, lambda: sustained(sustained_s), verdicts)
        with outage(url, outage_s) as proxy:
            run("outage", proxy, lambda: logs_during_outage(logging_s), verdicts)
    verdicts.print()
    print(f"\ntook {watch}")
    return verdicts.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
