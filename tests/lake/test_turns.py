"""Committer runs take turns in the bucket: one commits at a time, whatever Lambda starts."""

from __future__ import annotations

from pathlib import Path

from blocklake.lake.turns import MINUTE_NS, PREFIX, Turns
from blocklake.stores.blobs import LocalBlobStore

TIMEOUT_NS = 5 * MINUTE_NS
T0 = 1_800_000_000 * 10**9 // MINUTE_NS * MINUTE_NS


def test_one_run_per_minute_and_none_while_an_earlier_one_commits(tmp_path: Path) -> None:
    turns = Turns(LocalBlobStore(tmp_path), TIMEOUT_NS)
    first = turns.take(T0 + 1)
    assert first == T0 // MINUTE_NS
    assert turns.take(T0 + 2) is None  # the same minute again (a retried invocation)
    assert turns.take(T0 + MINUTE_NS) is None  # the next minute: the first still commits
    assert turns.take(T0 + 2 * MINUTE_NS) is None  # and still waits for the first, not the skip
    turns.done(first)
    assert turns.take(T0 + 3 * MINUTE_NS) == T0 // MINUTE_NS + 3


def test_a_run_that_died_holds_the_lake_no_longer_than_the_timeout(tmp_path: Path) -> None:
    turns = Turns(LocalBlobStore(tmp_path), TIMEOUT_NS)
    assert turns.take(T0) is not None  # never marked done: killed
    assert turns.take(T0 + 4 * MINUTE_NS) is None
    assert turns.take(T0 + 5 * MINUTE_NS) == T0 // MINUTE_NS + 5


def test_turns_older_than_an_hour_are_removed(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    turns = Turns(blobs, TIMEOUT_NS)
    for minute in range(0, 90, 10):
        turn = turns.take(T0 + minute * MINUTE_NS)
        assert turn is not None
        turns.done(turn)
    kept = {int(key.removeprefix(PREFIX).removesuffix(".done")) for key in blobs.list(PREFIX)}
    assert min(kept) >= T0 // MINUTE_NS + 80 - 60
