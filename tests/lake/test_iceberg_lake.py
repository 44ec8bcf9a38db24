"""The lake's tables: staged fragments committed in batches exactly once (retries and crashes
included), tables created on first write and widened by name, deletes; every check compares
what we read with Athena's view (``iceberg_scan`` of the catalog's metadata location)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from blocklake.lake import Fragment
from blocklake.lake.iceberg import IcebergLake
from blocklake.lake.staging import BATCHES, STAGING
from blocklake.stores.blobs import LocalBlobStore
from tests.helpers import lake_for
from tests.lake import athena_view

HOUR_US = 3600 * 10**6
T0_US = 1_780_000_000 * 10**6 // HOUR_US * HOUR_US


def logs(messages: list[str], minute: int = 0, process: str = "p1") -> pa.Table:
    times = [T0_US + (minute * 60 + i) * 10**6 for i in range(len(messages))]
    return pa.table(
        {
            "process_id": [process] * len(messages),
            "stream_id": ["s"] * len(messages),
            "block_id": ["b"] * len(messages),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "level": ["INFO"] * len(messages),
            "target": ["t"] * len(messages),
            "message": messages,
            "properties": pa.array([[]] * len(messages), pa.map_(pa.string(), pa.string())),
        }
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def lake(root: Path) -> IcebergLake:
    return lake_for(LocalBlobStore(root))


def ours(lake: IcebergLake, table: str = "log_entries") -> int:
    iceberg = lake.load(table, "acme")
    return 0 if iceberg is None else iceberg.scan().to_arrow().num_rows


def test_a_retried_append_stages_nothing_twice(lake: IcebergLake, root: Path) -> None:
    fragment = Fragment("date=2026-05-28/hour=20", logs(["a", "b"]), ("block-1",))
    assert len(lake.append_fragments("log_entries", "acme", [fragment])) == 1
    assert lake.append_fragments("log_entries", "acme", [fragment]) == []  # a retry
    assert ours(lake) == 0  # staged is not visible
    report = lake.commit_pending()
    assert (report.fragments, report.rows, report.commits) == (1, 2, 1)
    assert lake.append_fragments("log_entries", "acme", [fragment]) == []  # after the commit
    assert lake.commit_pending().commits == 0
    assert ours(lake) == athena_view.count(root, "acme", "log_entries") == 2


def test_a_batch_is_one_commit_per_table(lake: IcebergLake) -> None:
    lake.append_fragments("log_entries", "acme", [Fragment("p", logs(["first"]), ("b",))])
    lake.commit_pending()
    for number in range(20):
        fragment = Fragment("p", logs([f"m{number}"], minute=number), (f"block-{number}",))
        lake.append_fragments("log_entries", "acme", [fragment])
    before = len(lake.load("log_entries", "acme").metadata.snapshots)
    report = lake.commit_pending()
    assert (report.fragments, report.commits) == (20, 1)
    assert len(lake.load("log_entries", "acme").metadata.snapshots) == before + 1
    assert ours(lake) == 21


def test_a_committer_crash_after_its_commit_never_duplicates(
    lake: IcebergLake, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.append_fragments("log_entries", "acme", [Fragment("p", logs(["x", "y"]), ("b1",))])
    deleting = LocalBlobStore.delete

    def crash(self: LocalBlobStore, keys: list[str]) -> None:
        raise OSError("killed after the commit, before the fragments were deleted")

    monkeypatch.setattr(LocalBlobStore, "delete", crash)
    with pytest.raises(OSError):
        lake.commit_pending()
    assert ours(lake) == 2  # committed
    monkeypatch.setattr(LocalBlobStore, "delete", deleting)
    report = lake.commit_pending()  # finishes the batch it finds: commits nothing again
    assert report.commits == 0
    assert ours(lake) == athena_view.count(root, "acme", "log_entries") == 2
    assert list(lake.blobs.list(STAGING)) == list(lake.blobs.list(BATCHES)) == []


def test_a_batch_recorded_but_not_committed_is_committed_once(
    lake: IcebergLake, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.append_fragments("log_entries", "acme", [Fragment("p", logs(["x"]), ("b1",))])

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("killed before the commit")

    monkeypatch.setattr(IcebergLake, "_append", crash)
    with pytest.raises(OSError):
        lake.commit_pending()
    assert len(list(lake.blobs.list(BATCHES))) == 1
    monkeypatch.undo()
    assert lake.commit_pending().commits == 1
    assert ours(lake) == athena_view.count(root, "acme", "log_entries") == 1


def test_fragments_of_an_append_that_never_finished_are_not_committed(lake: IcebergLake) -> None:
    lake.append_fragments("log_entries", "acme", [Fragment("p", logs(["done"]), ("b1",))])
    (staged,) = lake.blobs.list(STAGING)
    # A conversion killed halfway: its fragment written, its mark not.
    half = staged.replace(staged.split("/")[3], "0" * 32)
    lake.blobs.put(half, lake.blobs.get(staged))
    assert lake.commit_pending().fragments == 1
    assert ours(lake) == 1
    assert list(lake.blobs.list(STAGING)) == [half]  # left to the conversion's retry


def test_a_new_table_is_created_and_new_columns_are_added_by_name(
    lake: IcebergLake, root: Path
) -> None:
    first = pa.table({"time": pa.array([T0_US], pa.timestamp("us", tz="UTC")), "a": ["1"]})
    lake.append_fragments("events_orders", "acme", [Fragment("p", first, ("b1",))])
    lake.commit_pending()
    wider = pa.table(
        {"time": pa.array([T0_US + 1], pa.timestamp("us", tz="UTC")), "a": ["2"], "b": [7]}
    )
    lake.append_fragments("events_orders", "acme", [Fragment("p", wider, ("b2",))])
    lake.commit_pending()
    assert "events_orders" in lake.tables("acme") and "log_entries" in lake.tables("acme")
    rows = sorted(athena_view.rows(root, "acme", "events_orders", "SELECT a, b FROM t"))
    assert rows == [("1", None), ("2", 7)]
    stored = lake.load("events_orders", "acme").scan().to_arrow()
    assert sorted(stored.column("b").to_pylist(), key=str) == [7, None]
    assert [f.name for f in lake.load("events_orders", "acme").spec().fields] == ["time_hour"]


def test_deleted_rows_are_gone_for_every_reader(lake: IcebergLake, root: Path) -> None:
    for number, process in enumerate(["keep", "erase", "keep"]):
        fragment = Fragment("p", logs(["m", "n"], minute=number, process=process), (f"b{number}",))
        lake.append_fragments("log_entries", "acme", [fragment])
        lake.commit_pending()
    lake.delete("log_entries", "acme", "process_id", ["erase"])
    assert ours(lake) == athena_view.count(root, "acme", "log_entries") == 4
    plan = lake.plan("log_entries", "acme", T0_US * 1000, (T0_US + HOUR_US) * 1000)
    assert plan.rows == 4


def test_rows_past_the_retention_go_for_every_reader(lake: IcebergLake, root: Path) -> None:
    day_us = 24 * HOUR_US
    old = Fragment("p", logs(["old"], minute=-3 * 24 * 60), ("b-old",))
    new = Fragment("p", logs(["new"]), ("b-new",))
    lake.append_fragments("log_entries", "acme", [old, new])
    lake.commit_pending()
    lake.retention_days = 2
    report = lake.compact((T0_US + day_us) * 1000)
    assert report.tables_trimmed == 1
    assert ours(lake) == athena_view.count(root, "acme", "log_entries") == 1
    assert lake.compact((T0_US + day_us) * 1000).tables_trimmed == 0
