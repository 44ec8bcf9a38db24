"""``sdk.stats`` counters: every field of a snapshot, from distinct counts (so that no two
fields can be confused), and drops added per reason."""

from __future__ import annotations

import pytest

from blocklake.sdk.stats import DROP_REASONS, Counters


def test_a_snapshot_reports_every_counter() -> None:
    counters = Counters(
        drained=1000,
        acknowledged=900,
        coerced=3,
        truncated=4,
        blocks_sent=5,
        bytes_sent=6000,
        retries=7,
        registrations_repeated=8,
        own_metrics=9,
    )
    counters.drop("buffer_full", 20)
    counters.drop("buffer_full", 30)
    counters.drop("refused", 40)
    counters.drop("after_shutdown", 2)
    snapshot = counters.snapshot(buffered=11, in_flight=13, after_shutdown=17)
    dropped = dict.fromkeys(DROP_REASONS, 0) | {
        "buffer_full": 50,
        "refused": 40,
        "after_shutdown": 2 + 17,
    }
    assert snapshot == {
        "recorded": 1000 + 50 + 11 + 17,
        "acknowledged": 900,
        "pending": 11 + 13,
        "dropped": dropped,
        "coerced": 3,
        "truncated": 4,
        "blocks_sent": 5,
        "bytes_sent": 6000,
        "retries": 7,
        "registrations_repeated": 8,
        "own_metrics": 9,
    }
    assert counters.dropped_total == 50 + 40 + 2  # the snapshot's after_shutdown is not kept
    assert counters.dropped["after_shutdown"] == 2
    snapshot["dropped"]["refused"] = 0  # a copy: the counters are not changed through it
    assert counters.dropped["refused"] == 40


def test_the_defaults_are_zero_and_each_counter_is_its_own() -> None:
    first, second = Counters(), Counters()
    first.drop("queue_full", 1)
    assert second.dropped == dict.fromkeys(DROP_REASONS, 0)
    assert second.snapshot(0, 0) == {
        "recorded": 0,
        "acknowledged": 0,
        "pending": 0,
        "dropped": dict.fromkeys(DROP_REASONS, 0),
        "coerced": 0,
        "truncated": 0,
        "blocks_sent": 0,
        "bytes_sent": 0,
        "retries": 0,
        "registrations_repeated": 0,
        "own_metrics": 0,
    }
    with pytest.raises(KeyError):
        first.drop("no such reason", 1)
    assert first.lock is not second.lock
