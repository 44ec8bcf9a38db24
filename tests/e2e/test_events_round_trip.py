"""Issue 12 (items 1-5) end to end: what the SDK records (correlation, trace context, span
status, typed attributes, user-defined event types, the stdlib bridge's fields) comes back in
SQL and in the Parquet files the ETL wrote, through ``sdk.init`` against the local server."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blocklake import sdk
from blocklake.cli import post_query
from blocklake.config import Settings
from blocklake.sdk import recording
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

API_KEY = next(iter(KEYS))
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def server(settings: Settings):
    with LocalServer(settings, port=0) as running:
        yield running
    sdk.shutdown()


@pytest.fixture
def fresh_user_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test declares its types anew (as a new process would)."""
    monkeypatch.setattr(recording, "_user_types", {})
    monkeypatch.setattr(recording, "user_buffers", [])


def query(server: LocalServer, sql: str) -> list[list]:
    now = time.time_ns()
    result = post_query(
        server.url, API_KEY, {"sql": sql, "begin": now - 3600 * 10**9, "end": now + 60 * 10**9}
    )
    assert not result["truncated"]
    return result["rows"]


def parquet_rows(server: LocalServer, table: str) -> list[dict]:
    """Every row of ``table``'s Parquet files, read directly (not through a view)."""
    blobs = server.lake.blobs
    keys = [key for key in blobs.list(f"tables/{table}/") if key.endswith(".parquet")]
    assert keys, f"no files for {table}"
    tables = [pq.read_table(io.BytesIO(blobs.get(key))) for key in keys]
    return pa.concat_tables(tables, promote_options="default").to_pylist()


def send(server: LocalServer) -> None:
    assert sdk.flush()
    server.lake.wait_converted()
    assert server.lake.failed_conversions == 0


class CartError(Exception):
    pass


def handle_request(route: str, fail: bool, pause: float) -> None:
    with sdk.span("handle_request"):
        sdk.set_span_attributes({"route": route, "status_code": 500 if fail else 200})
        sdk.metric("requests", 1, unit="count", properties={"route": route})  # issue's input
        time.sleep(pause)
        if fail:
            sdk.error(f"cart {route} failed", target="app")
            raise CartError(f"no cart for {route}")
        sdk.info(f"served {route}", target="app")


def test_every_new_field_round_trips_from_sdk_to_sql(server: LocalServer, fresh_user_types) -> None:
    sdk.init(server.url, API_KEY)
    with sdk.trace_context(TRACEPARENT):
        outgoing = None
        with sdk.span("checkout"):
            outgoing = sdk.current_traceparent()
            sdk.info("in checkout", target="app")
    # three requests on three threads, at once: their logs must join their own span only
    threads = [
        threading.Thread(
            target=lambda route=route, fail=fail, pause=pause: _swallow(route, fail, pause),
            name=f"worker-{route.strip('/')}",
        )
        for route, fail, pause in (("/cart", True, 0.05), ("/pay", True, 0.01), ("/home", False, 0))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    send(server)

    # 1. correlation: thread, innermost span, trace; spans carry trace, status, exception
    assert outgoing is not None and outgoing.startswith(f"00-{TRACE}-")
    rows = query(
        server,
        "SELECT l.message, l.thread_name, l.span_kind, l.trace_id, s.name, s.trace_id, "
        "s.remote_parent_id, s.parent_span_id "
        "FROM log_entries l JOIN thread_spans s "
        "ON s.process_id = l.process_id AND s.span_id = l.span_id "
        "WHERE l.message = 'in checkout'",
    )
    assert rows == [
        [
            "in checkout",
            "MainThread",
            "thread",
            TRACE,
            "checkout",
            TRACE,
            str(int.from_bytes(bytes.fromhex(PARENT), "big", signed=True)),  # JSON: as text
            0,
        ]
    ]
    assert (
        outgoing.split("-")[2]
        == query(
            server, "SELECT printf('%016x', span_id) FROM thread_spans WHERE name = 'checkout'"
        )[0][0]
    )
    # "the logs of the slowest failing request": one SQL, only that request's logs
    slowest = query(
        server,
        "SELECT l.message, l.thread_name, s.exception_type, s.exception_message "
        "FROM log_entries l JOIN thread_spans s "
        "ON s.process_id = l.process_id AND s.span_id = l.span_id "
        "WHERE s.span_id = (SELECT span_id FROM thread_spans WHERE status = 'error' "
        "ORDER BY duration_ns DESC LIMIT 1)",
    )
    assert slowest == [
        ["cart /cart failed", "worker-cart", f"{__name__}.CartError", "no cart for /cart"]
    ]
    assert query(
        server,
        "SELECT status, count(*) FROM thread_spans WHERE name = 'handle_request' "
        "GROUP BY status ORDER BY status",
    ) == [["error", 2], ["ok", 1]]

    # 2. attributes: "requests by route" and "p99 latency per route", one SQL each
    assert query(
        server,
        "SELECT attributes['route'] AS route, sum(value) FROM measures "
        "WHERE name = 'requests' GROUP BY route ORDER BY route",
    ) == [["/cart", 1.0], ["/home", 1.0], ["/pay", 1.0]]
    p99 = query(
        server,
        "SELECT attributes['route'] AS route, quantile_cont(duration_ns, 0.99) AS p99 "
        "FROM thread_spans WHERE name = 'handle_request' GROUP BY route ORDER BY p99 DESC",
    )
    assert [route for route, _ in p99] == ["/cart", "/pay", "/home"]
    assert query(
        server,
        "SELECT attributes_num['status_code'], attributes['status_code'] FROM thread_spans "
        "WHERE attributes['route'] = '/pay'",
    ) == [[500.0, "500"]]

    # the Parquet files themselves hold the same
    spans = {
        dict(row["attributes"] or []).get("route"): row
        for row in parquet_rows(server, "thread_spans")
    }
    assert spans["/cart"]["status"] == "error"
    assert spans["/cart"]["exception_type"] == f"{__name__}.CartError"
    assert dict(spans["/home"]["attributes_num"]) == {"status_code": 200.0}
    assert spans["/home"]["exception_type"] is None and spans["/home"]["trace_id"]
    logs = {row["message"]: row for row in parquet_rows(server, "log_entries")}
    cart = logs["cart /cart failed"]
    assert cart["thread_name"] == "worker-cart" and cart["span_kind"] == "thread"
    assert cart["span_id"] == spans["/cart"]["span_id"]
    assert cart["trace_id"] == spans["/cart"]["trace_id"] and len(cart["trace_id"]) == 32
    assert (cart["level"], cart["level_number"]) == ("ERROR", 17)
    measures = parquet_rows(server, "measures")
    routes = [dict(row["attributes"])["route"] for row in measures if row["name"] == "requests"]
    assert sorted(routes) == ["/cart", "/home", "/pay"]


def _swallow(route: str, fail: bool, pause: float) -> None:
    with contextlib.suppress(CartError):
        handle_request(route, fail, pause)


def test_async_spans_take_attributes_an_explicit_parent_and_their_logs(
    server: LocalServer,
) -> None:
    import asyncio

    sdk.init(server.url, API_KEY)

    async def main() -> None:
        async with sdk.async_span("request", attributes={"route": "/async", "ok": True}) as span:
            sdk.warn("inside the request")
            # work handed to another thread names its parent explicitly
            worker = threading.Thread(target=_child, args=(span,))
            worker.start()
            worker.join()

    asyncio.run(main())
    send(server)
    rows = query(
        server,
        "SELECT c.name, p.name, c.trace_id = p.trace_id, p.attributes['ok'], "
        "p.attributes['route'] FROM async_spans c JOIN async_spans p ON c.parent_span_id = "
        "p.span_id AND c.process_id = p.process_id",
    )
    assert rows == [["handed over", "request", True, "true", "/async"]]
    assert query(
        server,
        "SELECT l.span_kind, s.name FROM log_entries l JOIN async_spans s "
        "ON s.span_id = l.span_id AND s.process_id = l.process_id "
        "WHERE l.message = 'inside the request'",
    ) == [["async", "request"]]


def _child(parent: sdk.AsyncSpan) -> None:
    with sdk.async_span("handed over", parent=parent):
        pass


def test_stdlib_records_keep_traceback_extra_call_site_thread_and_level(
    server: LocalServer,
) -> None:
    sdk.init(server.url, API_KEY)
    logger = logging.getLogger("tests.e2e.shop")
    logger.propagate = False
    handler = sdk.LoggingHandler()
    logger.addHandler(handler)
    try:
        try:
            {}["order"]
        except KeyError:
            line = _line() + 1
            logger.error("failed", exc_info=True, extra={"order": 7})  # the input
        logger.warning("disk almost full")
    finally:
        logger.removeHandler(handler)
    send(server)
    (row,) = query(
        server,
        "SELECT target, level, level_number, properties['order'], properties['code.filepath'], "
        "properties['code.lineno'], properties['code.function'], properties['exception'], "
        "thread_name FROM log_entries WHERE message = 'failed'",
    )
    assert row[:7] == [
        "tests.e2e.shop",
        "ERROR",
        17,
        "7",
        __file__,
        str(line),
        "test_stdlib_records_keep_traceback_extra_call_site_thread_and_level",
    ]
    assert row[7].startswith("Traceback (most recent call last):") and "KeyError" in row[7]
    assert row[8] == "MainThread"
    # logging spells it WARNING, the lake (OpenTelemetry) WARN: the number says both
    assert query(
        server, "SELECT level, level_number FROM log_entries WHERE message = 'disk almost full'"
    ) == [["WARN", 13]]
    assert query(server, "SELECT count(*) FROM log_entries WHERE level_number >= 13") == [[2]]


def _line() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_user_defined_types_and_a_later_version_adding_fields(
    server: LocalServer, fresh_user_types, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk.init(server.url, API_KEY)
    checkout = sdk.event_type("checkout", order_id=int, amount=float, currency=str, ok=bool)
    assert sdk.event_type("checkout", order_id=int, amount=float, currency=str, ok=bool) is (
        checkout
    )
    with pytest.raises(ValueError, match="already declared"):
        sdk.event_type("checkout", order_id=str)
    with sdk.span("pay"):
        checkout.record(1, 9.5, "EUR", True)
    checkout.record(order_id=2, amount=20.0, currency="USD", ok=False)
    send(server)
    sdk.shutdown()
    # version 2 of the application (a new process) adds a field
    monkeypatch.setattr(recording, "_user_types", {})
    monkeypatch.setattr(recording, "user_buffers", [])
    sdk.init(server.url, API_KEY)
    checkout_v2 = sdk.event_type(
        "checkout", order_id=int, amount=float, currency=str, ok=bool, coupon=str
    )
    checkout_v2.record(3, 5.0, "EUR", True, "SPRING")
    send(server)
    rows = query(
        server,
        "SELECT order_id, amount, currency, ok, coupon, span_kind IS NOT NULL "
        "FROM events_checkout ORDER BY order_id",
    )
    assert rows == [
        [1, 9.5, "EUR", True, None, True],
        [2, 20.0, "USD", False, None, False],
        [3, 5.0, "EUR", True, "SPRING", False],
    ]
    assert query(
        server,
        "SELECT count(*) FROM events_checkout e JOIN thread_spans s "
        "ON s.span_id = e.span_id AND s.process_id = e.process_id WHERE s.name = 'pay'",
    ) == [[1]]
    files = parquet_rows(server, "events_checkout")
    assert sorted((r["order_id"], r.get("coupon")) for r in files) == [
        (1, None), (2, None), (3, "SPRING"),
    ]  # fmt: skip
    assert all(r["thread_name"] == "MainThread" for r in files)


def test_a_user_type_named_with_a_digit_is_queryable(server: LocalServer, fresh_user_types) -> None:
    """``checkout_v2``: names take digits, and so do the lake's tables (an outsider's find: its
    rows were stored and never read)."""
    sdk.init(server.url, API_KEY)
    checkout = sdk.event_type("checkout_v2", order_id=int)
    checkout.record(7)
    send(server)
    sdk.shutdown()
    assert query(server, "SELECT order_id FROM events_checkout_v2") == [[7]]
