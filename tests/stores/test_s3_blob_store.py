"""What only the S3 adapter has to handle: throttling, conflicting conditional writes, paging."""

from __future__ import annotations

from types import SimpleNamespace

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse

from blocklake.stores.s3 import BlobStoreBusy, S3BlobStore
from tests.support.moto_s3 import BUCKET, s3_error


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry backoff, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))
    return slept


@pytest.fixture
def store(s3_client) -> S3BlobStore:
    return S3BlobStore(BUCKET, client=s3_client)


def inject_before_send(s3_client, operation: str, responses: list[AWSResponse]) -> None:
    """The next HTTP attempts of ``operation`` get these responses (botocore retries them)."""

    def respond(**_: object) -> AWSResponse | None:
        return responses.pop(0) if responses else None

    s3_client.meta.events.register_first(f"before-send.s3.{operation}", respond)


def test_throttling_is_retried(store, s3_client, sleeps) -> None:
    store.put("raw/a.blk", b"data")
    inject_before_send(s3_client, "GetObject", [s3_error("SlowDown", 503)] * 2)
    assert store.get("raw/a.blk") == b"data"
    assert len(sleeps) == 2


def test_throttling_that_persists_is_a_clear_error(store, s3_client, sleeps) -> None:
    store.put("raw/a.blk", b"data")
    inject_before_send(s3_client, "GetObject", [s3_error("SlowDown", 503)] * 50)
    with pytest.raises(
        BlobStoreBusy, match=r"still throttling s3://.*/raw/a.blk after \d+ retries"
    ):
        store.get("raw/a.blk")


def test_a_conflicting_conditional_write_is_retried(store, s3_client, monkeypatch) -> None:
    monkeypatch.setattr("blocklake.stores.s3.time.sleep", lambda _: None)
    conflicts = [1]

    def conflict_once(**_: object):
        if conflicts and conflicts.pop():
            error = {"Code": "ConditionalRequestConflict", "Message": "in flight"}
            parsed = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 409}}
            return AWSResponse("https://s3.test", 409, {}, None), parsed
        return None

    s3_client.meta.events.register_first("before-call.s3.PutObject", conflict_once)
    assert store.put_if_absent("raw/a.blk", b"1") is True
    assert conflicts == []
    assert store.get("raw/a.blk") == b"1"


def test_listing_follows_pages(store, s3_client) -> None:
    keys = [f"raw/{n}" for n in range(5)]
    for key in keys:
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=b"")
    pages = []

    def small_pages(params: dict, **_: object) -> None:
        params["MaxKeys"] = 2
        pages.append(params.get("ContinuationToken"))

    s3_client.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    assert list(store.list("raw/")) == keys
    assert len(pages) == 3 and pages[0] is None and None not in pages[1:]


def test_urls_are_s3_urls(store) -> None:
    assert store.url("tables/x/a.parquet") == f"s3://{BUCKET}/tables/x/a.parquet"
