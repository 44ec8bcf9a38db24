"""SqlExecutor on Aurora PostgreSQL through the RDS Data API: what the deployed Lambdas use.

Over HTTPS, so a Lambda needs no VPC and no NAT to reach the database. Three things differ from
a driver: a paused cluster answers "resuming" for a while instead of waiting; one response may
not exceed 1 MB; values travel as typed fields (``longValue``, ``stringValue``, ...).
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

from blocklake.stores.named_params import parse_named
from blocklake.stores.sql import Params, Row

PAGE_LIMIT = "blocklake_page_limit"
PAGE_OFFSET = "blocklake_page_offset"


class DatabaseStillResuming(TimeoutError):
    """The cluster did not come back from auto-pause within the wait this executor allows."""


class RowTooLarge(ValueError):
    """A single row exceeds the Data API's response size limit: no paging can fetch it."""


def _is_resuming(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code == "DatabaseResumingException" or "resuming after being auto-paused" in str(error)


def _is_too_large(error: ClientError) -> bool:
    return "response size limit" in str(error)


def to_field(value: object) -> dict[str, Any]:
    """A Python value as a Data API typed parameter value."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"blobValue": value}
    raise TypeError(f"no Data API type for {type(value).__name__} value {value!r}")


def from_field(field: dict[str, Any]) -> object:
    """A typed value of a result record as Python: BIGINT arrives as ``longValue``, and so on."""
    if field.get("isNull"):
        return None
    for kind in ("longValue", "stringValue", "doubleValue", "booleanValue"):
        if kind in field:
            return field[kind]
    if "blobValue" in field:
        blob = field["blobValue"]
        return base64.b64decode(blob) if isinstance(blob, str) else bytes(blob)
    if "arrayValue" in field:
        array = field["arrayValue"]
        if "arrayValues" in array:
            return [from_field({"arrayValue": item}) for item in array["arrayValues"]]
        return next(iter(array.values()), [])
    raise ValueError(f"unknown Data API field {field!r}")


class DataApiExecutor:
    """Statements run one per call; ``transaction()`` binds them to a transaction id per thread."""

    dialect = "postgres"

    def __init__(
        self,
        cluster_arn: str,
        secret_arn: str,
        database: str,
        client: Any | None = None,
        resume_timeout_s: float = 60.0,
        first_page_rows: int = 1000,
    ) -> None:
        self._credentials = {"resourceArn": cluster_arn, "secretArn": secret_arn}
        self._database = database
        self._client = client or boto3.client("rds-data")
        self._resume_timeout_s = resume_timeout_s
        self._first_page_rows = first_page_rows
        self._transaction = threading.local()

    def _call(self, operation: Callable[..., dict], **request: Any) -> dict:
        """Calls the Data API, waiting with backoff while an auto-paused cluster resumes."""
        deadline = time.monotonic() + self._resume_timeout_s
        delay = 0.25
        while True:
            try:
                return operation(**self._credentials, **request)
            except ClientError as error:
                if not _is_resuming(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise DatabaseStillResuming(
                        f"database still resuming after {self._resume_timeout_s:.0f} s: {error}"
                    ) from error
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _statement(self, sql: str, params: Params | None, **options: Any) -> dict:
        names = parse_named(sql).names
        values = params or {}
        missing = [name for name in names if name not in values]
        if missing:
            raise KeyError(f"no value for parameter(s) {', '.join(missing)} of: {sql}")
        request: dict[str, Any] = {
            "database": self._database,
            "sql": sql,
            "parameters": [{"name": name, "value": to_field(values[name])} for name in names],
            **options,
        }
        transaction_id = getattr(self._transaction, "id", None)
        if transaction_id is not None:
            request["transactionId"] = transaction_id
        return self._call(self._client.execute_statement, **request)

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._statement(sql, params)["numberOfRecordsUpdated"]

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        """Pages the statement when its result exceeds the 1 MB response limit.

        Paging re-runs it as ``LIMIT``/``OFFSET`` over one REPEATABLE READ snapshot, so the pages
        fit together; the order between pages is the statement's ``ORDER BY``, which every
        query that can return many rows must have.
        """
        try:
            return self._rows(sql, params)
        except ClientError as error:
            if not _is_too_large(error):
                raise
        if getattr(self._transaction, "id", None) is not None:
            return self._paged_rows(sql, params)
        with self.transaction():
            self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return self._paged_rows(sql, params)

    def _rows(self, sql: str, params: Params | None) -> list[Row]:
        response = self._statement(sql, params, includeResultMetadata=True)
        names = [column["name"] for column in response.get("columnMetadata", [])]
        return [
            dict(zip(names, map(from_field, record), strict=True))
            for record in response.get("records", [])
        ]

    def _paged_rows(self, sql: str, params: Params | None) -> list[Row]:
        """Pages of ``first_page_rows`` rows, halved while a page is still too large."""
        paged = f"SELECT * FROM ({sql}) AS unpaged LIMIT :{PAGE_LIMIT} OFFSET :{PAGE_OFFSET}"
        rows: list[Row] = []
        page_rows = self._first_page_rows
        while True:
            try:
                page = self._rows(
                    paged, {**(params or {}), PAGE_LIMIT: page_rows, PAGE_OFFSET: len(rows)}
                )
            except ClientError as error:
                if not _is_too_large(error):
                    raise
                if page_rows == 1:
                    raise RowTooLarge(f"row {len(rows)} alone exceeds the limit: {sql}") from error
                page_rows //= 2
                continue
            rows.extend(page)
            if len(page) < page_rows:
                return rows

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A nested call joins the outer transaction: the Data API has no savepoint call."""
        if getattr(self._transaction, "id", None) is not None:
            yield
            return
        begun = self._call(self._client.begin_transaction, database=self._database)
        transaction_id = begun["transactionId"]
        self._transaction.id = transaction_id
        try:
            yield
        except BaseException:
            self._transaction.id = None
            self._call(self._client.rollback_transaction, transactionId=transaction_id)
            raise
        self._transaction.id = None
        self._call(self._client.commit_transaction, transactionId=transaction_id)
