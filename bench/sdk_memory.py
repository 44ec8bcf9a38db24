# ruff: noqa: E501  (tables of figures read better on one line)
"""The SDK's memory stays bounded under sustained overload, and every dropped event is counted.

    .venv/bin/python bench/sdk_memory.py [--quick] [--traced N] [--events N]

Two threads record log events as fast as they can, with the SDK's default limits (65536 events
per buffer, 32 MiB of blocks waiting for the server), in two situations:

  A. no sdk.init (``--traced`` events, default 1 million: tracemalloc makes each dropped event
     about 4x dearer, so this part is the shorter one): nothing drains the buffer. Traced memory (tracemalloc) must plateau once the
     buffer is full; ``recording.logs.dropped`` must equal recorded - kept; after one flusher
     round (against a port that refuses connections) the ``blocklake.sdk.dropped_events``
     metric must carry that same count. The peak is compared with keeping the same events in an
     unbounded list (measured the same way, in the same run).
  B. sdk.init against http://127.0.0.1:9 (refuses connections; ``--events``, default 4 million): the flusher drains, encodes,
     fails to upload, retries with backoff and keeps at most 32 MiB of blocks. Process RSS (from
     /proc/self/statm, no tracing) must plateau; events lost must all be reported as dropped.

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
from blocklake.sdk.transport import Transport

DEAD_ENDPOINT = "http://127.0.0.1:9"
THREADS = 2
MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def record(total: int, samples: list[tuple[int, int]], measure, chunk: int) -> float:
    """``total`` sdk.info calls split over THREADS threads; thread 0 samples ``measure()``
    after each of its chunks. Returns the seconds taken."""
    per_thread = total // THREADS
    done = [0] * THREADS
    start_line = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        info = sdk.info
        start_line.wait()
        left = per_thread
        while left:
            n = min(chunk, left)
            for _ in range(n):
                info("request handled", target="bench")
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
    capacity = recording._capacity
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

    # One flusher round, with a server that refuses connections: the drop count becomes a metric.
    flusher = Flusher(
        Transport(DEAD_ENDPOINT, "bench", timeout=1.0, attempts=1),
        sdk._process_document({}, "bench", None),
    )
    flusher.run_once()
    reported = [e[3] for e in recording.measures if e[1] == DROPPED_METRIC]
    pending_logs = sum(b.object_count for b in flusher.pending if b.stream is recording.logs.stream)

    # The same events kept in an unbounded list, measured the same way.
    del recording.logs[:]
    del recording.measures[:]
    flusher.pending.clear()
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
    ratio = unbounded_peak / peak
    print(f"  unbounded list of the same {events:,} events: {unbounded_peak / MiB:.1f} MiB")

    ok, first, second = plateaued(samples, slack=MiB)
    verdicts.check(
        "A memory plateaus (max 2nd half vs 1st half)",
        f"{second / MiB:.1f} vs {first / MiB:.1f} MiB",
        "<= 1.1x + 1 MiB",
        ok,
    )
    verdicts.check(
        "A buffer holds at most its capacity",
        f"{kept:,}",
        f"<= {capacity:,} (+1 race)",
        kept <= capacity + 1,
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
        sum(reported) == events - kept and pending_logs == kept,
    )
    # The SDK should hold what `capacity` events cost in a list, and no more (50% slack).
    needed = events / capacity / 1.5
    verdicts.check(
        "A peak: unbounded list / SDK",
        f"{ratio:.1f}x",
        f">= {needed:.1f}x (events/cap/1.5)",
        ratio >= needed,
    )


def scenario_b(events: int, verdicts: Verdicts) -> None:
    print(
        f"\nB. sdk.init({DEAD_ENDPOINT!r}) (refused), {THREADS} threads record {events:,} log events"
    )
    gc.collect()
    sdk.init(DEAD_ENDPOINT, api_key="bench", exe="bench")
    flusher = sdk._flusher
    base = rss()
    samples: list[tuple[int, int]] = []
    seconds = record(events, samples, rss, 100_000)
    show(samples, "RSS above start", base)
    # Stop the flusher without its last round, so that the counts below hold still.
    flusher._stopping = True
    recording.wake_flusher.set()
    flusher._thread.join(30)
    sdk._flusher = None
    kept_logs = len(recording.logs) + sum(
        b.object_count for b in flusher.pending if b.stream is recording.logs.stream
    )
    lost = events - kept_logs
    reported = flusher.dropped_total + recording.logs.dropped
    pending_bytes = sum(len(b.data) for b in flusher.pending)
    print(
        f"  {seconds:.1f} s ({seconds / events * 1e9:.0f} ns/event); {flusher._rounds} flusher rounds; "
        f"kept {kept_logs:,} (buffer {len(recording.logs):,} + {len(flusher.pending)} pending blocks "
        f"of {pending_bytes / MiB:.1f} MiB); lost {lost:,}; reported dropped {reported:,}"
    )
    ok, first, second = plateaued(samples, slack=4 * MiB)
    verdicts.check(
        "B RSS plateaus (max 2nd half vs 1st half)",
        f"{(second - base) / MiB:.1f} vs {(first - base) / MiB:.1f} MiB",
        "<= 1.1x + 4 MiB",
        ok,
    )
    # Drops of the SDK's own metric events (at most one per round) are counted in the same total.
    verdicts.check(
        "B every lost log event reported dropped",
        f"{reported:,} vs {lost:,}",
        f"lost <= reported <= lost + {flusher._rounds}",
        lost <= reported <= lost + flusher._rounds,
    )
    del recording.logs[:]
    del recording.measures[:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events")
    parser.add_argument("--traced", type=int, default=None, help="events in A (tracemalloc on)")
    parser.add_argument("--events", type=int, default=None, help="events in B")
    args = parser.parse_args()
    traced = args.traced or (300_000 if args.quick else 1_000_000)
    events = args.events or (1_000_000 if args.quick else 4_000_000)
    if min(traced, events) < 2 * recording._capacity:
        parser.error(
            f"record at least {2 * recording._capacity:,} events: twice the buffer capacity"
        )
    traced -= traced % THREADS
    events -= events % THREADS
    watch = Stopwatch()
    print(machine())
    print(
        f"defaults: capacity {recording._capacity:,} events per buffer, flush at "
        f"{recording._flush_at:,}; GC on"
    )
    logging.getLogger("blocklake.sdk").setLevel(logging.CRITICAL)  # its "will retry" warnings
    verdicts = Verdicts()
    scenario_a(traced, verdicts)
    scenario_b(events, verdicts)
    verdicts.print()
    print(f"\ntook {watch}")
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
