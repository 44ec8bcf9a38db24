"""Serves an ``rds-data`` boto3 client from a real PostgreSQL, shaped like the RDS Data API.

moto's ``rds-data`` returns canned results and has no transaction calls, so the Data API adapter
would be tested against nothing. This shim hooks the client's ``before-call`` event (after
botocore has validated the request against the real service model, before anything is signed or
sent), runs the request on PostgreSQL, and returns what the Data API would: typed record fields
or JSON records, ``columnMetadata``, ``numberOfRecordsUpdated``, transaction ids, and its errors
(``DatabaseErrorException`` for SQL errors, the 1 MB response limit, injected failures such as
``DatabaseResumingException``).
"""

from __future__ import annotations

import base64
import decimal
import json
import threading
import uuid
from collections import deque
from typing import Any

import boto3
import psycopg
from botocore.awsrequest import AWSResponse

from blocklake.stores.named_params import parse_named

CLUSTER_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:blocklake"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:blocklake-db"
RESPONSE_SIZE_LIMIT_MESSAGE = "Database returned more than the allowed response size limit"

_JDBC_TYPES = {"int8": -5, "int4": 4, "int2": 5, "text": 12, "varchar": 12, "bool": -7,
               "float8": 8, "float4": 7, "numeric": 2, "bytea": -2}  # fmt: skip


class ShimError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _parameter_value(parameter: dict[str, Any]) -> object:
    value = parameter["value"]
    if parameter.get("typeHint"):
        raise ShimError("BadRequestException", "the shim does not implement typeHint")
    if value.get("isNull"):
        return None
    for kind in ("stringValue", "longValue", "doubleValue", "booleanValue"):
        if kind in value:
            return value[kind]
    if "blobValue" in value:
        return base64.b64decode(value["blobValue"])  # serialized request: base64 text
    raise ShimError("BadRequestException", f"unsupported parameter value {value!r}")


def _field(value: object) -> dict[str, Any]:
    """A result value as the Data API types it: BIGINT as longValue, NUMERIC as a string..."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes | memoryview):
        return {"blobValue": bytes(value)}
    if isinstance(value, list):
        return {"arrayValue": {"stringValues": [str(item) for item in value]}}
    return {"stringValue": str(value)}


def _json_value(value: object) -> object:
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, decimal.Decimal) or not isinstance(value, int | float | str | bool | None):
        return str(value)
    return value


class RdsDataShim:
    """One per test database; ``client()`` gives an ``rds-data`` client served by it."""

    def __init__(self, conninfo: str, max_response_bytes: int = 1_000_000) -> None:
        self.conninfo = conninfo
        self.max_response_bytes = max_response_bytes
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._failures: deque[tuple[str, ShimError]] = deque()
        self._idle: list[psycopg.Connection] = []
        self._transactions: dict[str, psycopg.Connection] = {}
        self._lock = threading.Lock()

    def client(self) -> Any:
        client = boto3.client(
            "rds-data",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.meta.events.register("before-call.rds-data.*", self._handle)
        return client

    def fail_next(self, operation: str, code: str, message: str, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` fail with ``code`` before touching the DB."""
        for _ in range(times):
            self._failures.append((operation, ShimError(code, message)))

    def close(self) -> None:
        with self._lock:
            connections = [*self._idle, *self._transactions.values()]
            self._idle, self._transactions = [], {}
        for connection in connections:
            connection.close()

    def _handle(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict]:
        request = json.loads(params["body"] or b"{}")
        with self._lock:
            self.calls.append((model.name, request))
            failure = self._take_failure(model.name)
        try:
            if failure is not None:
                raise failure
            response = getattr(self, f"_{model.name}")(request)
        except ShimError as error:
            parsed = {
                "Error": {"Code": error.code, "Message": error.message},
                "message": error.message,
                "ResponseMetadata": {"HTTPStatusCode": error.status},
            }
            return AWSResponse("https://rds-data.shim", error.status, {}, None), parsed
        response["ResponseMetadata"] = {"HTTPStatusCode": 200}
        return AWSResponse("https://rds-data.shim", 200, {}, None), response

    def _take_failure(self, operation: str) -> ShimError | None:
        if self._failures and self._failures[0][0] == operation:
            return self._failures.popleft()[1]
        return None

    def _BeginTransaction(self, request: dict[str, Any]) -> dict[str, Any]:
        connection = psycopg.connect(self.conninfo)
        transaction_id = uuid.uuid4().hex
        with self._lock:
            self._transactions[transaction_id] = connection
        return {"transactionId": transaction_id}

    def _end(self, request: dict[str, Any], commit: bool) -> None:
        with self._lock:
            connection = self._transactions.pop(request["transactionId"], None)
        if connection is None:
            raise ShimError("TransactionNotFoundException", "Transaction is not found", 404)
        try:
            connection.commit() if commit else connection.rollback()
        except psycopg.Error as error:
            raise ShimError("DatabaseErrorException", f"ERROR: {error}") from error
        finally:
            connection.close()

    def _CommitTransaction(self, request: dict[str, Any]) -> dict[str, Any]:
        self._end(request, commit=True)
        return {"transactionStatus": "Transaction Committed"}

    def _RollbackTransaction(self, request: dict[str, Any]) -> dict[str, Any]:
        self._end(request, commit=False)
        return {"transactionStatus": "Rollback Complete"}

    def _ExecuteStatement(self, request: dict[str, Any]) -> dict[str, Any]:
        statement = parse_named(request["sql"])
        values = {p["name"]: _parameter_value(p) for p in request.get("parameters", [])}
        missing = [name for name in statement.names if name not in values]
        if missing:
            raise ShimError("BadRequestException", f"No value specified for parameter: {missing}")
        transaction_id = request.get("transactionId")
        if transaction_id is not None:
            with self._lock:
                connection = self._transactions.get(transaction_id)
            if connection is None:
                raise ShimError("TransactionNotFoundException", "Transaction is not found", 404)
            return self._run(connection, statement.pyformat, values, request)
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        connection = connection or psycopg.connect(self.conninfo, autocommit=True)
        try:
            return self._run(connection, statement.pyformat, values, request)
        finally:
            with self._lock:
                self._idle.append(connection)

    def _run(
        self, connection: psycopg.Connection, sql: str, values: dict, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            cursor = connection.execute(sql, values)
        except psycopg.Error as error:
            state = error.sqlstate or ""
            raise ShimError(
                "DatabaseErrorException", f"ERROR: {error}; SQLState: {state}"
            ) from error
        response: dict[str, Any] = {"generatedFields": []}
        if cursor.description is None:
            response["numberOfRecordsUpdated"] = cursor.rowcount
            return response
        response["numberOfRecordsUpdated"] = 0
        rows = cursor.fetchall()
        names = [column.name for column in cursor.description]
        if request.get("formatRecordsAs") == "JSON":
            records = [{n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in rows]
            response["formattedRecords"] = json.dumps(records)
            size = len(response["formattedRecords"])
        else:
            response["records"] = [[_field(value) for value in row] for row in rows]
            size = len(json.dumps(response["records"], default=_json_value))
        if size > self.max_response_bytes:
            raise ShimError("BadRequestException", RESPONSE_SIZE_LIMIT_MESSAGE)
        if request.get("includeResultMetadata"):
            response["columnMetadata"] = [self._column(connection, c) for c in cursor.description]
        return response

    @staticmethod
    def _column(connection: psycopg.Connection, column: psycopg.Column) -> dict[str, Any]:
        info = connection.adapters.types.get(column.type_code)
        type_name = info.name if info is not None else "unknown"
        return {
            "name": column.name,
            "label": column.name,
            "typeName": type_name,
            "type": _JDBC_TYPES.get(type_name, 1111),
            "nullable": 2,
        }
