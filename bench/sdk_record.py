"""SDK cost per event on the record path, against the alternatives, all measured in one run.

    .venv/bin/python bench/sdk_record.py [--quick] [--repeats N]

Every row is a timeit-style loop (the statement exactly as a user writes it, inside a ``for``
loop; GC left on, as in a real application), best (minimum) of several repeats, in nanoseconds
per event. The loop's own cost is in every row alike (and printed), so ratios are fair.

Rows:
  floor        a Python function that appends a tuple to a list: the least a Python record path
               can cost
  blocklake    sdk.info / sdk.metric / span enter+exit (three ways), buffers cleared between
               repeats and large enough that nothing is dropped (no server, no flusher)
  logging      stdlib logger.info to a do-nothing handler (level INFO, propagate False)
  picologging  the same with picologging
  OpenTelemetry SDK 1.x: counter.add (with and without attributes) on a MeterProvider with a
               PeriodicExportingMetricReader over a discarding exporter; a span from
               start_as_current_span with a TracerProvider + BatchSpanProcessor over a
               discarding exporter

Then the background cost: the flusher's encoding (the SDK's own stream writers, on the events
the record loops left in the buffers, in blocks of the default flush size), per event. It is off
the record path but it is CPU the application pays for, so record + encode is printed too.

Exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
import timeit

import picologging
from _common import Stopwatch, Verdicts, machine  # before blocklake: puts src/ on sys.path
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from blocklake import sdk
from blocklake.sdk import recording
from blocklake.sdk.streams import log_writer, metrics_writer, thread_writer

FLUSH_AT = 8192
"""The SDK's default flush size: the background cost is measured on blocks of this many events."""

# --- the subjects ------------------------------------------------------------------------------

lst: list = []


def floor(a, b):
    lst.append((a, b))


def plain():
    pass


@sdk.instrument
def instrumented():
    pass


scope = sdk.SpanScope("name")


class NullHandler(logging.Handler):
    def emit(self, record):
        pass


logger = logging.getLogger("bench")
logger.setLevel(logging.INFO)
logger.addHandler(NullHandler())
logger.propagate = False


class PicoNullHandler(picologging.Handler):
    def emit(self, record):
        pass


pico = picologging.getLogger("bench")
pico.setLevel(picologging.INFO)
pico.addHandler(PicoNullHandler())
pico.propagate = False


class DiscardSpans(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


class DiscardMetrics(MetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(BatchSpanProcessor(DiscardSpans()))
tracer = tracer_provider.get_tracer("bench")

meter_provider = MeterProvider(
    metric_readers=[PeriodicExportingMetricReader(DiscardMetrics(), export_interval_millis=60_000)]
)
meter = meter_provider.get_meter("bench")
counter = meter.create_counter("requests", unit="1")
histogram = meter.create_histogram("latency", unit="ms")
attributes = {"route": "/api/items", "status": 200}

# --- measuring ---------------------------------------------------------------------------------


def reset() -> None:
    del lst[:]
    del recording.logs[:]
    del recording.measures[:]
    for buffer in recording.thread_buffers:
        del buffer[:]
    for buffer in (recording.logs, recording.measures, *recording.thread_buffers):
        buffer.drops = recording.DropCounter()


def ns_per_call(stmt: str, number: int, repeats: int) -> float:
    """timeit with GC on; best of ``repeats``; buffers cleared (untimed) before each repeat."""
    timer = timeit.Timer(stmt, setup="gc.enable()", globals=globals())
    best = float("inf")
    for _ in range(repeats):
        reset()
        gc.collect()
        best = min(best, timer.timeit(number) / number * 1e9)
    return best


def encode_ns(make_writer, events: list, repeats: int) -> float:
    """Flusher cost per event: the stream writer's encode over blocks of FLUSH_AT events."""
    best = float("inf")
    chunks = [events[i : i + FLUSH_AT] for i in range(0, len(events), FLUSH_AT)]
    for _ in range(repeats):
        writer = make_writer({})
        start = time.perf_counter_ns()
        for chunk in chunks:
            writer.encode(chunk)
        best = min(best, (time.perf_counter_ns() - start) / len(events))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    slow_repeats = args.repeats or (3 if quick else 5)
    fast = 100_000 if quick else 300_000  # iterations for the sub-microsecond rows
    slow = 20_000 if quick else 50_000  # for the alternatives, which take microseconds

    # Big enough that no record below reaches the slow path: nothing dropped, no flusher wake-up.
    recording.configure(flush_at=10**9, memory_budget=10**15)
    watch = Stopwatch()
    print(machine())
    print(
        f"{'quick' if quick else 'full'} run: best of {repeats} repeats of {fast:,} iterations "
        f"(alternatives: best of {slow_repeats} of {slow:,}; OTel spans {slow // 4:,}); GC on"
    )

    rows: dict[str, float] = {}
    plan = [
        ("loop", "empty loop (in every row below)", "pass", fast),
        ("floor", "floor: def floor(a, b): lst.append((a, b))", "floor(1, 2)", fast),
        ("call", "empty function call  plain()", "plain()", fast),
        (
            "info",
            "blocklake  sdk.info('message', target='bench')",
            'sdk.info("message", target="bench")',
            fast,
        ),
        (
            "logging",
            "logging    logger.info('message'), no-op handler",
            'logger.info("message")',
            slow,
        ),
        ("pico", "picologging logger.info('message'), no-op handler", 'pico.info("message")', slow),
        (
            "metric",
            "blocklake  sdk.metric('name', 1.5, 'ms')",
            'sdk.metric("name", 1.5, "ms")',
            fast,
        ),
        ("otel_add", "OTel       counter.add(1)", "counter.add(1)", slow),
        (
            "otel_add_attrs",
            "OTel       counter.add(1, {2 attributes})",
            "counter.add(1, attributes)",
            slow,
        ),
        ("otel_hist", "OTel       histogram.record(1.5)  (info)", "histogram.record(1.5)", slow),
        ("span", "blocklake  with sdk.span('name'): pass", 'with sdk.span("name"): pass', fast),
        ("scope", "blocklake  with scope: pass  (module SpanScope)", "with scope: pass", fast),
        ("decorated", "blocklake  @sdk.instrument empty function, raw", "instrumented()", fast),
        (
            "otel_span",
            "OTel       with tracer.start_as_current_span('name')",
            'with tracer.start_as_current_span("name"): pass',
            slow // 4,
        ),
    ]
    leftovers: dict[str, list] = {}
    for key, _, stmt, number in plan:
        rows[key] = ns_per_call(stmt, number, repeats if number == fast else slow_repeats)
        # keep what the last repeat recorded, for the background (encode) cost below
        if key == "info":
            leftovers["logs"] = list(recording.logs)
        elif key == "metric":
            leftovers["measures"] = list(recording.measures)
        elif key == "span":
            leftovers["spans"] = [e for b in recording.thread_buffers for e in b]
    reset()
    rows["decorator"] = rows["decorated"] - rows["call"]

    encode_repeats = 2 if quick else 3
    enc = {
        "info": encode_ns(log_writer, leftovers["logs"], encode_repeats),
        "metric": encode_ns(metrics_writer, leftovers["measures"], encode_repeats),
        # a span is two events; per span:
        "span": 2 * encode_ns(thread_writer, leftovers["spans"], encode_repeats),
    }
    leftovers.clear()

    labels = {key: label for key, label, _, _ in plan}
    labels["decorator"] = "blocklake  @sdk.instrument, decorator's own cost (raw - plain())"
    order = [
        "loop",
        "floor",
        "call",
        "info",
        "logging",
        "pico",
        "metric",
        "otel_add",
        "otel_add_attrs",
        "otel_hist",
        "span",
        "scope",
        "decorated",
        "decorator",
        "otel_span",
    ]
    width = max(len(labels[k]) for k in order)
    print()
    print(f"{'record path (per event; a span is enter+exit)':<{width}}  {'ns':>8}  {'x floor':>8}")
    for key in order:
        if key in ("info", "metric", "span"):
            print()
        print(f"{labels[key]:<{width}}  {rows[key]:8.0f}  {rows[key] / rows['floor']:8.2f}")

    print()
    print("background cost, NOT on the record path: the flusher thread's encode (stream writer")
    print(
        f".encode on blocks of {FLUSH_AT} events: columns, string table, lz4), per event, and the"
    )
    print("whole CPU an application pays per event (record + encode; upload not included)")
    print(f"{'':<22}{'record ns':>10}  {'encode ns':>10}  {'total ns':>10}")
    for key, name in (
        ("info", "log (sdk.info)"),
        ("metric", "metric (sdk.metric)"),
        ("span", "span (sdk.span)"),
    ):
        print(f"{name:<22}{rows[key]:>10.0f}  {enc[key]:>10.0f}  {rows[key] + enc[key]:>10.0f}")

    verdicts = Verdicts()
    ratio = rows["logging"] / rows["info"]
    verdicts.check("log: logging.info / sdk.info", f"{ratio:.1f}x", ">= 6x", ratio >= 6)
    ratio = rows["otel_add"] / rows["metric"]
    verdicts.check(
        "metric: OTel counter.add(1) / sdk.metric", f"{ratio:.1f}x", ">= 10x", ratio >= 10
    )
    ratio = rows["otel_add_attrs"] / rows["metric"]
    verdicts.check(
        "metric: OTel counter.add(1, attrs) / sdk.metric", f"{ratio:.1f}x", ">= 10x", ratio >= 10
    )
    for key, what in (("span", "sdk.span"), ("scope", "SpanScope"), ("decorator", "@instrument")):
        ratio = rows["otel_span"] / rows[key]
        verdicts.check(f"span: OTel span / {what}", f"{ratio:.1f}x", ">= 20x", ratio >= 20)
    for key, what, events in (
        ("info", "sdk.info", 1),
        ("metric", "sdk.metric", 1),
        ("span", "sdk.span / 2", 2),
        ("scope", "SpanScope / 2", 2),
        ("decorator", "@instrument / 2", 2),
    ):
        ratio = rows[key] / events / rows["floor"]
        verdicts.check(f"event: {what} vs floor", f"{ratio:.2f}x", "<= 3x", ratio <= 3)
    verdicts.print()
    print(f"\ntook {watch}")
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
