"""The BlobStore contract, run on the local directory and on S3 (moto)."""

from __future__ import annotations

import threading

import pytest

from blocklake.stores.blobs import BlobNotFound, BlobStore
from tests.support.moto_s3 import make_conditional_puts_atomic


def test_put_if_absent_never_overwrites(blob_store: BlobStore) -> None:
    assert blob_store.put_if_absent("raw/a.blk", b"first") is True
    assert blob_store.put_if_absent("raw/a.blk", b"second") is False
    assert blob_store.get("raw/a.blk") == b"first"


def test_put_replaces(blob_store: BlobStore) -> None:
    blob_store.put("tables/x.parquet", b"old")
    blob_store.put("tables/x.parquet", b"new")
    assert blob_store.get("tables/x.parquet") == b"new"


def test_delete_removes_objects_and_ignores_missing_ones(blob_store: BlobStore) -> None:
    keys = [f"tables/t/p/{i:04d}.parquet" for i in range(1005)]  # over one S3 batch of 1000
    for key in keys:
        blob_store.put(key, b"x")
    blob_store.put("tables/t/p/kept.parquet", b"y")
    blob_store.delete([*keys, "tables/t/p/never-there.parquet"])
    assert list(blob_store.list("tables/t/")) == ["tables/t/p/kept.parquet"]


def test_list_folders_names_the_next_level_only(blob_store: BlobStore) -> None:
    for key in ("raw/tenant=a/x/1.blk", "raw/tenant=a/y/2.blk", "raw/tenant=b/3.blk", "raw/4.blk"):
        blob_store.put(key, b"z")
    assert blob_store.list_folders("raw/") == ["raw/tenant=a/", "raw/tenant=b/"]
    assert blob_store.list_folders("raw/tenant=a/") == ["raw/tenant=a/x/", "raw/tenant=a/y/"]
    assert blob_store.list_folders("raw/none/") == []


def test_missing_objects(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blob_store.get("raw/missing.blk")
    with pytest.raises(BlobNotFound):
        blob_store.get_range("raw/missing.blk", 0, 10)
    assert blob_store.exists("raw/missing.blk") is False


def test_get_range_reads_part_of_an_object(blob_store: BlobStore) -> None:
    blob_store.put("raw/a.blk", bytes(range(100)))
    assert blob_store.exists("raw/a.blk") is True
    assert blob_store.get_range("raw/a.blk", 10, 5) == bytes(range(10, 15))
    assert blob_store.get_range("raw/a.blk", 95, 10) == bytes(range(95, 100))
    assert blob_store.get_range("raw/a.blk", 100, 10) == b""
    assert blob_store.get_range("raw/a.blk", 0, 0) == b""
    with pytest.raises(ValueError):
        blob_store.get_range("raw/a.blk", -1, 3)


def test_list_gives_keys_under_a_prefix_in_lexical_order(blob_store: BlobStore) -> None:
    keys = ["raw/t=a/2/x", "raw/t=a/1/y", "raw/t=ab/z", "raw/t=b/1", "tables/q"]
    for key in keys:
        blob_store.put(key, b".")
    assert list(blob_store.list("raw/t=a")) == ["raw/t=a/1/y", "raw/t=a/2/x", "raw/t=ab/z"]
    assert list(blob_store.list("raw/t=a/")) == ["raw/t=a/1/y", "raw/t=a/2/x"]
    assert list(blob_store.list("nothing/")) == []


def test_on_created_hears_of_each_new_object_once(make_blob_store) -> None:
    created: list[str] = []
    store = make_blob_store(on_created=created.append)
    store.put_if_absent("raw/a.blk", b"1")
    store.put_if_absent("raw/a.blk", b"1")
    store.put("tables/b.parquet", b"2")
    assert created == ["raw/a.blk", "tables/b.parquet"]


def test_racing_put_if_absent_creates_once(blob_store: BlobStore, monkeypatch) -> None:
    make_conditional_puts_atomic(monkeypatch)
    start = threading.Barrier(8)
    results: list[bool] = []

    def upload(worker: int) -> None:
        start.wait()
        results.append(blob_store.put_if_absent("raw/raced.blk", f"copy {worker}".encode()))

    threads = [threading.Thread(target=upload, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert blob_store.get("raw/raced.blk").startswith(b"copy ")
