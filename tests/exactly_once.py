"""The workload both end-to-end tests record (local and cloud), and the checks that every event
it recorded comes back from SQL exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from blocklake import sdk

THREADS, ITERATIONS = 3, 400

Query = Callable[[str], list[list]]
"""Runs SQL over the last hour, returns the rows."""


def _record(worker: int, outer: sdk.SpanScope) -> None:
    for i in range(ITERATIONS):
        with outer:
            sdk.info(
                f"w{worker} i{i}", target="e2e", properties={"worker": str(worker), "i": str(i)}
            )
            sdk.metric("e2e.value", worker * 10_000 + i + 0.25, "units")
            with sdk.span("inner"):
                if i % 100 == 50:  # cut this thread's stream while two spans are open
                    assert sdk.flush()
                if i % 3 == 0:
                    with sdk.span("leaf"):
                        pass


def record_workload() -> None:
    """Logs, metrics and nested spans on THREADS threads, with streams cut mid-span."""
    outer = sdk.SpanScope("outer", "e2e")
    threads = [
        threading.Thread(target=_record, args=(w, outer), name=f"e2e-{w}") for w in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def check_every_event_once(query: Query) -> None:
    logs = query(
        "SELECT message, properties['worker'], properties['i'], level, target "
        "FROM log_entries WHERE target = 'e2e'"
    )
    expected = {
        (f"w{w} i{i}", str(w), str(i), "INFO", "e2e")
        for w in range(THREADS)
        for i in range(ITERATIONS)
    }
    assert len(logs) == len(expected) and {tuple(row) for row in logs} == expected

    values = query("SELECT value, unit FROM measures WHERE name = 'e2e.value'")
    assert sorted(row[0] for row in values) == sorted(
        w * 10_000 + i + 0.25 for w in range(THREADS) for i in range(ITERATIONS)
    )
    assert {row[1] for row in values} == {"units"}

    spans = query(
        "SELECT name, depth, count(*), count(DISTINCT (stream_id, span_id)) "
        "FROM thread_spans GROUP BY ALL ORDER BY name"
    )
    leaves = THREADS * len(range(0, ITERATIONS, 3))
    assert spans == [
        ["inner", 1, THREADS * ITERATIONS, THREADS * ITERATIONS],
        ["leaf", 2, leaves, leaves],
        ["outer", 0, THREADS * ITERATIONS, THREADS * ITERATIONS],
    ]
    orphans = query(
        """SELECT count(*) FROM thread_spans child LEFT JOIN thread_spans parent
             ON child.stream_id = parent.stream_id AND child.parent_span_id = parent.span_id
           WHERE child.depth > 0 AND (parent.span_id IS NULL OR parent.depth != child.depth - 1
                 OR child.begin < parent.begin OR child."end" > parent."end")"""
    )
    assert orphans == [[0]]
    cpu_blocks = query(
        "SELECT count(*) FROM blocks JOIN streams USING (stream_id) "
        "WHERE list_contains(tags, 'cpu')"
    )
    assert cpu_blocks[0][0] >= THREADS * 4  # spans were open across block boundaries
