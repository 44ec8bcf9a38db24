"""``blocklake demo``: a small instrumented service under load, recorded, ingested, converted and
queried on the embedded defaults, with the answers printed as tables."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from blocklake import sdk

_stdlib_log = logging.getLogger("demo.orders")
parse_scope = sdk.SpanScope("parse_order", "demo.orders")


@dataclass
class Workload:
    threads: int = 4
    requests_per_thread: int = 250
    seed: int = 7


@sdk.instrument
def query_inventory(rng: random.Random, item: int) -> int:
    time.sleep(rng.expovariate(1 / 0.0004))
    if rng.random() < 0.05:
        with sdk.span("inventory_cache_miss"):
            time.sleep(0.002)
    return item % 7


@sdk.instrument
def charge_card(rng: random.Random, amount: float) -> bool:
    time.sleep(rng.uniform(0.0002, 0.0015))
    return rng.random() > 0.03


ROUTES = ("/orders", "/orders/express")
"""The demo's two routes: attributes of its spans and latency metric."""


@sdk.instrument(name="handle_order")
def handle_order(rng: random.Random, worker: int, order: int) -> None:
    started = time.perf_counter()
    with parse_scope:
        items = [rng.randrange(1000) for _ in range(rng.randint(1, 4))]
    for item in items:
        query_inventory(rng, item)
    amount = round(sum(items) / 10, 2)
    if not charge_card(rng, amount):
        sdk.error(
            f"card declined for order {order}",
            target="demo.payments",
            properties={"order": str(order), "amount": str(amount)},
        )
        _stdlib_log.warning("order %d abandoned after a declined card", order)
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    route = ROUTES[order % len(ROUTES)]
    sdk.set_span_attributes({"route": route, "items": len(items)})
    sdk.metric("order_latency", elapsed_ms, "ms", attributes={"route": route})
    sdk.metric("order_amount", amount, "usd")
    if elapsed_ms > 5:
        sdk.warn(f"slow order {order}: {elapsed_ms:.1f} ms", target="demo.orders")
    sdk.info(
        f"order {order} done",
        target="demo.orders",
        properties={"worker": str(worker), "items": str(len(items))},
    )
    sdk.debug(f"order {order} items {items}", target="demo.orders")


def _worker(workload: Workload, worker: int) -> None:
    rng = random.Random(workload.seed * 1000 + worker)
    for order in range(workload.requests_per_thread):
        handle_order(rng, worker, worker * workload.requests_per_thread + order)
        if order % 50 == 0:
            sdk.metric("queue_depth", float(rng.randint(0, 20)), "orders")


def run_workload(workload: Workload) -> None:
    """Runs the instrumented service; stdlib logging flows in through ``sdk.LoggingHandler``."""
    handler = sdk.LoggingHandler()
    _stdlib_log.addHandler(handler)
    _stdlib_log.setLevel(logging.INFO)
    _stdlib_log.propagate = False
    try:
        sdk.info(
            "demo service starting", target="demo", properties={"threads": str(workload.threads)}
        )
        threads = [
            threading.Thread(target=_worker, args=(workload, i), name=f"worker-{i}")
            for i in range(workload.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sdk.info("demo service done", target="demo")
    finally:
        _stdlib_log.removeHandler(handler)


DEMO_QUERIES = {
    "Slowest spans": """
        SELECT s.name, st.properties['thread_name'] AS thread, s.depth,
               round(s.duration_ns / 1e6, 3) AS duration_ms,
               strftime(s.begin, '%H:%M:%S.%f') AS began_utc
        FROM thread_spans s JOIN streams st USING (stream_id)
        ORDER BY s.duration_ns DESC LIMIT 8""",
    "Span summary": """
        SELECT name, count(*) AS calls, round(avg(duration_ns) / 1e3, 1) AS avg_us,
               round(quantile_cont(duration_ns, 0.95) / 1e3, 1) AS p95_us
        FROM thread_spans GROUP BY name ORDER BY calls DESC""",
    "Log entries by level": """
        SELECT level, count(*) AS entries, any_value(message) AS example
        FROM log_entries GROUP BY level ORDER BY entries DESC""",
    "Metrics": """
        SELECT name, unit, count(*) AS samples, round(min(value), 2) AS min,
               round(avg(value), 2) AS avg, round(quantile_cont(value, 0.95), 2) AS p95,
               round(max(value), 2) AS max
        FROM measures GROUP BY name, unit ORDER BY name""",
}
