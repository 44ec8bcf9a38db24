# ruff: noqa: E501  (tables of figures read better on one line)
"""The SDK's memory stays bounded under sustained overload, and every dropped event is counted.

    .venv/bin/python bench/sdk_memory.py [--quick] [--traced N] [--events N]

Two threads record log events as fast as they can, with the SDK's default memory budget
(64 MiB, estimated bytes of the events held past ``flush_at`` plus blocks waiting for upload),
in two situations:

  A. no sdk.init (``--traced`` events, default 1 million: tracemalloc makes each event several
     times dearer): nothing drains the buffer. Traced memory must plateau near the budget;
     ``recording.logs.dropped`` must equal recorded - kept; one flusher round must record the
     ``blocklake.sdk.dropped_events`` metric with that same count. The peak is compared with
     keeping the same events in an unbounded list (measured the same way, in the same run).
  B. sdk.init against http://127.0.0.1:9 (refuses connections; ``--events``, default 4
     million): the flusher drains and encodes, the uploader retries, waiting blocks and held
     events share the budget. Process RSS (from /proc/self/statm, no tracing) must plateau;
     after ``shutdown`` every event must be counted: ``sdk.stats()`` recorded == dropped.
     Here the record buffers' share of the budget is what fills (``buffer_full``): their
     repetitive events make blocks of a few bytes per event.
  C. as B, with ``max_memory`` 4 MiB and messages that compress poorly (65,536 distinct random
     ones, cycled), one thread that waits for the flusher after each 8,192 events (so events
     become blocks): the blocks waiting for upload fill the budget, so the uploader gives up the
     oldest (``queue_full``). The waiting bytes, sampled as B samples RSS, must stay within the
     budget, ``queue_full`` must be above 0 (the cap was reached) and every event counted.

Each cap the SDK has is reached in this run: A and B the record budget, C the waiting blocks'.
Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import time
import tracemalloc

from _common import Stopwatch, Verdicts, machine  # before blocklake: puts src/ on sys.path

from blocklake import sdk
from blocklake.sdk import recording
from blocklake.sdk.flusher import DROPPED_METRIC, Flusher
from blocklake.sdk.stats import Counters
from blocklake.sdk.transport import Transport
from blocklake.sdk.uploader import Uploader

DEAD_ENDPOINT = "http://127.0.0.1:9"
THREADS = 2
MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def record(
    total: int,
    samples: list[tuple[int, int]],
    measure,
    chunk: int,
    messages: list[str] | None = None,
) -> float:
    """``total`` sdk.info calls split over THREADS threads (``messages`` cycled, else one
    message); thread 0 samples ``measure()`` after each of its chunks. Returns the seconds."""
    per_thread = total // THREADS
    done = [0] * THREADS
    start_line = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        info = sdk.info
        texts = messages or ["request handled"]
        start_line.wait()
        left = per_thread
        while left:
            n = min(chunk, left)
            if messages is None:
                for _ in range(n):
                    info("request handled", target="bench")
            else:
                for i in range(left - n, left):
                    info(texts[i % len(texts)], target="bench")
            left -= n
            done[index] += n
            if index == 0:
                samples.append((sum(done), measure()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.append((sum(done), measure()))
    return time.perf_counter() - start


def plateaued(samples: list[tuple[int, int]], slack: int) -> tuple[bool, int, int]:
    """Max memory over the second half of the run against the max over the first half."""
    half = len(samples) // 2
    first = max(m for _, m in samples[:half])
    second = max(m for _, m in samples[half:])
    return second <= first * 1.10 + slack, first, second


def show(samples: list[tuple[int, int]], what: str, baseline: int) -> None:
    step = max(1, len(samples) // 8)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    print(f"  {'events recorded':>16}  {what}")
    for events, value in picked:
        print(f"  {events:>16,}  {(value - baseline) / MiB:8.1f} MiB")


def scenario_a(events: int, verdicts: Verdicts) -> None:
    print(f"\nA. no sdk.init, {THREADS} threads record {events:,} log events (tracemalloc on)")
    budget = recording._memory_budget
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    samples: list[tuple[int, int]] = []
    seconds = record(events, samples, lambda: tracemalloc.get_traced_memory()[0], 100_000)
    peak = tracemalloc.get_traced_memory()[1] - base
    kept, dropped = len(recording.logs), recording.logs.dropped
    show(samples, "traced memory above start", base)
    print(
        f"  {seconds:.1f} s ({seconds / events * 1e9:.0f} ns/event under tracemalloc); "
        f"kept {kept:,}, dropped {dropped:,}, peak {peak / MiB:.1f} MiB"
    )

    # One flusher round (its uploader not started): the drop count becomes a metric.
    counters = Counters()
    uploader = Uploader(
        Transport(DEAD_ENDPOINT, "bench"), sdk._process_document({}, "bench", None), counters
    )
    flusher = Flusher(uploader, counters)
    flusher.run_once()  # counts the drops
    drained = counters.drained
    flusher._report_drops()  # what the next round starts with: the metric
    reported = [e[3] for e in recording.measures if e[1] == DROPPED_METRIC]

    # The same events kept in an unbounded list, measured the same way.
    del recording.logs[:]
    del recording.measures[:]
    uploader.queue.clear()
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    unbounded: list = []
    append, now = unbounded.append, recording.now
    for _ in range(events):
        append((now(), 4, "bench", "request handled", None))
    unbounded_peak = tracemalloc.get_traced_memory()[1] - base
    del unbounded
    tracemalloc.stop()
    gc.collect()
    print(f"  unbounded list of the same {events:,} events: {unbounded_peak / MiB:.1f} MiB")

    ok, first, second = plateaued(samples, slack=MiB)
    verdicts.check(
        "A memory plateaus (max 2nd half vs 1st half)",
        f"{second / MiB:.1f} vs {first / MiB:.1f} MiB",
        "<= 1.1x + 1 MiB",
        ok,
    )
    verdicts.check(
        "A peak within the budget (estimates err high)",
        f"{peak / MiB:.1f} MiB",
        f"<= {budget / MiB:.0f} MiB + flush_at events",
        peak <= budget + recording._flush_at * 1024,
    )
    verdicts.check(
        "A logs.dropped == recorded - kept",
        f"{dropped:,} vs {events - kept:,}",
        "equal",
        dropped == events - kept,
    )
    verdicts.check(
        f"A {DROPPED_METRIC} after a round",
        f"{sum(reported):,.0f} ({len(reported)} event)",
        f"== {events - kept:,}",
        sum(reported) == events - kept and drained == kept,
    )


def scenario_b(events: int, verdicts: Verdicts) -> None:
    print(
        f"\nB. sdk.init({DEAD_ENDPOINT!r}) (refused), {THREADS} threads record {events:,} log events"
    )
    gc.collect()
    sdk.init(DEAD_ENDPOINT, api_key="bench", exe="bench")
    base = rss()
    samples: list[tuple[int, int]] = []
    seconds = record(events, samples, rss, 100_000)
    show(samples, "RSS above start", base)
    waiting = sdk._flusher.uploader.queued_bytes
    abandoned = sdk.shutdown(timeout=1.0)
    stats = sdk.stats()
    dropped = {reason: n for reason, n in stats["dropped"].items() if n}
    print(
        f"  {seconds:.1f} s ({seconds / events * 1e9:.0f} ns/event); blocks waiting at the end "
        f"{waiting / MiB:.1f} MiB; recorded {stats['recorded']:,} (own metrics {stats['own_metrics']}); "
        f"dropped {dropped}; abandoned at shutdown {abandoned:,}"
    )
    ok, first, second = plateaued(samples, slack=4 * MiB)
    verdicts.check(
        "B RSS plateaus (max 2nd half vs 1st half)",
        f"{(second - base) / MiB:.1f} vs {(first - base) / MiB:.1f} MiB",
        "<= 1.1x + 4 MiB",
        ok,
    )
    lost = sum(stats["dropped"].values())
    verdicts.check(
        "B every event counted: recorded == dropped",
        f"{stats['recorded']:,} vs {lost:,}",
        f"equal, recorded - own == {events:,}",
        stats["recorded"] == lost + stats["pending"]
        and stats["recorded"] - stats["own_metrics"] == events,
    )
    del recording.logs[:]
    del recording.measures[:]


def scenario_c(events: int, verdicts: Verdicts) -> None:
    budget = 4 * MiB
    print(
        f"\nC. sdk.init({DEAD_ENDPOINT!r}, max_memory={budget // MiB} MiB) (refused), one thread "
        f"records {events:,} log events (65,536 distinct random messages), paced by the flusher"
    )
    messages = [os.urandom(24).hex() for _ in range(65_536)]
    gc.collect()
    sdk.init(DEAD_ENDPOINT, api_key="bench", exe="bench", max_memory=budget)
    uploader = sdk._flusher.uploader
    base = rss()
    samples: list[tuple[int, int]] = []
    waiting: list[int] = []

    def measure() -> int:
        waiting.append(uploader.queued_bytes)
        return rss()

    # One thread, paced: after each block's worth of events it lets the flusher drain them
    # (waits up to 1 s), so that events become waiting blocks rather than record-path drops.
    info, flush_at = sdk.info, recording._flush_at
    started = time.perf_counter()
    for first in range(0, events, flush_at):
        for i in range(first, min(events, first + flush_at)):
            info(messages[i % len(messages)], target="bench")
        deadline = time.monotonic() + 1.0
        while len(recording.logs) >= flush_at and time.monotonic() < deadline:
            time.sleep(0.001)
        samples.append((min(events, first + flush_at), measure()))
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # a flusher round or two more: what the buffers held becomes blocks
    waiting.append(uploader.queued_bytes)
    sdk.shutdown(timeout=1.0)
    stats = sdk.stats()
    dropped = {reason: n for reason, n in stats["dropped"].items() if n}
    show(samples, "RSS above start", base)
    print(
        f"  {seconds:.1f} s ({seconds / events * 1e9:.0f} ns/event); blocks waiting: max "
        f"{max(waiting) / MiB:.2f} MiB of {len(waiting)} samples; dropped {dropped}"
    )
    verdicts.check(
        "C the waiting blocks' cap is reached",
        f"queue_full {stats['dropped']['queue_full']:,}",
        "> 0",
        stats["dropped"]["queue_full"] > 0,
    )
    verdicts.check(
        "C waiting blocks within the budget",
        f"max {max(waiting) / MiB:.2f} MiB",
        f"<= {budget / MiB:.0f} MiB",
        max(waiting) <= budget,
    )
    ok, first, second = plateaued(samples, slack=4 * MiB)
    verdicts.check(
        "C RSS plateaus (max 2nd half vs 1st half)",
        f"{(second - base) / MiB:.1f} vs {(first - base) / MiB:.1f} MiB",
        "<= 1.1x + 4 MiB",
        ok,
    )
    lost = sum(stats["dropped"].values())
    verdicts.check(
        "C every event counted: recorded == dropped",
        f"{stats['recorded']:,} vs {lost:,}",
        f"equal, recorded - own == {events:,}",
        stats["recorded"] == lost + stats["pending"]
        and stats["recorded"] - stats["own_metrics"] == events,
    )
    del recording.logs[:]
    del recording.measures[:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events")
    parser.add_argument("--traced", type=int, default=None, help="events in A (tracemalloc on)")
    parser.add_argument("--events", type=int, default=None, help="events in B")
    parser.add_argument("--poor", type=int, default=None, help="events in C")
    args = parser.parse_args()
    traced = args.traced or (200_000 if args.quick else 1_000_000)
    events = args.events or (400_000 if args.quick else 4_000_000)
    poor = args.poor or (150_000 if args.quick else 600_000)
    traced -= traced % THREADS
    events -= events % THREADS
    poor -= poor % THREADS
    watch = Stopwatch()
    print(machine())
    print(
        f"defaults: memory budget {recording._memory_budget / MiB:.0f} MiB, flush at "
        f"{recording._flush_at:,}; GC on"
    )
    logging.getLogger("blocklake.sdk").setLevel(logging.CRITICAL)  # its "will retry" warnings
    verdicts = Verdicts()
    scenario_a(traced, verdicts)
    scenario_b(events, verdicts)
    scenario_c(poor, verdicts)
    verdicts.print()
    print(f"\ntook {watch}")
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
