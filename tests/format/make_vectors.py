"""Writes the golden vectors of the transit format: ``schemas/vectors/*.blk`` and, next to each,
a ``.json`` with the stream layout, every header field and the rows the block decodes to.

    .venv/bin/python tests/format/make_vectors.py

Deterministic: fixed stream and block ids, fixed ticks. Run it only when the format changes on
purpose (a new version); ``tests/format/test_golden.py`` fails on any accidental change.
"""

from __future__ import annotations

import json
import struct
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:  # runnable without installing the package
    sys.path.insert(0, str(ROOT / "src"))

from blocklake.format.encode import StringTable, encode_block, encode_section  # noqa: E402
from blocklake.format.header import HEADER_SIZE, MAGIC  # noqa: E402
from blocklake.format.schema import EventType, Field, event_types, layout_to_json  # noqa: E402

VECTORS = ROOT / "schemas" / "vectors"

USER_TYPE = EventType(
    1000,
    "request_done",
    (
        Field("ticks", "i64"),
        Field("bytes", "u64"),
        Field("status", "u32"),
        Field("retries", "u8"),
        Field("seconds", "f64"),
        Field("route", "str"),
        Field("labels", "map"),
    ),
)


def _logs() -> dict[str, list[dict]]:
    entries = [
        (1_000, 4, "app", "ready", {"version": "1.2.3", "pid": "4242"}),
        (1_250, 3, "app.db", "slow query: 812 ms", {}),
        (1_500, 2, "app.db", "connection lost", {"host": "db-1", "attempt": "3"}),
        (1_750, 5, "app.http", "GET /health → 200", {}),
        (2_000, 1, "app", "out of memory", {"exception": "MemoryError\n  at main.py:12"}),
        (2_100, 6, "app.unicode", "héllo 日本語 \U0001f680 \U00010348", {"clé": "värde ✓", "": ""}),
        (2_200, 4, "", "", {}),
        (2_300, 4, "app", "ready", {"version": "1.2.3"}),
    ]
    names = [f.name for f in event_types(1)["log_entry"].fields]
    return {"log_entry": [dict(zip(names, entry, strict=True)) for entry in entries]}


def _measures() -> dict[str, list[dict]]:
    samples = [
        (10, "cpu", "%", 12.5),
        (20, "mem", "bytes", 1_073_741_824.0),
        (30, "cpu", "%", 0.0),
        (40, "queue_depth", "items", 3.0),
        (50, "latency", "s", 0.000123),
        (60, "temperature", "°C", -12.75),
        (70, "blocklake.sdk.dropped_events", "events", 1e300),
    ]
    names = [f.name for f in event_types(1)["measure"].fields]
    return {"measure": [dict(zip(names, sample, strict=True)) for sample in samples]}


def _thread_spans() -> tuple[dict[str, list[dict]], int]:
    """The second block of a thread stream (transit revision 1): ``main`` opened in the first
    block and still open is replayed ahead of this block's own begins; ``main`` ends here, so
    its row comes from here."""
    second_block_events = 7  # begins and ends of the block's own spans, as the SDK records them
    begin_type = event_types(1)["thread_span_begin"]
    begins = [
        dict(zip([f.name for f in begin_type.fields], row, strict=True))
        for row in [
            (100, 1, 0, 0, "main", "app", "app/main.py", 10),  # replayed
            (200, 4, 1, 1, "load", "app.io", "app/io.py", 42),
            (210, 5, 4, 2, "parse", "app.io", "app/io.py", 77),
            (230, 6, 4, 2, "parse", "app.io", "app/io.py", 77),
        ]
    ]
    ends = [
        {"ticks": 220, "span_id": 5},
        {"ticks": 240, "span_id": 6},
        {"ticks": 250, "span_id": 4},
        {"ticks": 300, "span_id": 1},
    ]
    return {"thread_span_begin": begins, "thread_span_end": ends}, second_block_events


TRACE = "0af7651916cd43dd8448eb211c80319c"
"""The W3C Trace Context specification's example trace id."""


def _logs_v2() -> dict[str, list[dict]]:
    """Revision 2 log entries: thread, innermost span (none, thread, async, remote) and trace."""
    entries = [
        (1_000, 4, "app", "ready", {}, 4242, "MainThread", 0, 0, ""),
        (1_100, 2, "app.http", "failed", {"order": "7"}, 4243, "worker-1", 12, 1, TRACE),
        (1_200, 3, "app.http", "slow", {}, 4243, "worker-1", 13, 2, TRACE),
        (1_300, 4, "app.http", "from upstream", {}, 4244, "", 2**64 - 1, 3, TRACE),
    ]
    names = [f.name for f in event_types(2)["log_entry"].fields]
    return {"log_entry": [dict(zip(names, entry, strict=True)) for entry in entries]}


def _spans_v2() -> dict[str, list[dict]]:
    """Revision 2 thread spans: trace ids, a remote parent, attributes, a span that failed."""
    begin, end = (
        [f.name for f in event_types(2)[name].fields]
        for name in ("thread_span_begin", "thread_span_end")
    )
    begins = [
        (100, 11, 0, 0, "handle_request", "app", "app/http.py", 20, TRACE, 0, 2**63 + 5,
         '{"route":"/cart","status_code":500,"cached":false,"ratio":0.25}'),
        (110, 12, 11, 1, "load_cart", "app.db", "app/db.py", 7, TRACE, 0, 0, ""),
        (120, 13, 11, 1, "render", "app", "app/http.py", 40, TRACE, 0, 0, '{"route":"/cart"}'),
        (140, 14, 0, 0, "cleanup", "app.jobs", "app/jobs.py", 3, "", 14, 0, ""),  # a local root
        (142, 15, 14, 1, "vacuum", "app.jobs", "app/jobs.py", 9, "", 14, 0, ""),
    ]  # fmt: skip
    ends = [
        (115, 12, 1, "app.db.Timeout", "no answer in 5 s"),
        (125, 13, 0, "", ""),
        (130, 11, 1, "ValueError", "bad cart"),
        (145, 15, 0, "", ""),
        (150, 14, 0, "", ""),
    ]
    return {
        "thread_span_begin": [dict(zip(begin, row, strict=True)) for row in begins],
        "thread_span_end": [dict(zip(end, row, strict=True)) for row in ends],
    }


EVOLVED_TYPES = [
    EventType(
        2,
        "measure",
        (*event_types(2)["measure"].fields, Field("sample_rate", "f64"), Field("host", "str")),
    ),
    EventType(900, "future_event", (Field("ticks", "i64"), Field("payload", "str"))),
    EventType(
        1001,
        "checkout",
        (
            Field("ticks", "i64"),
            Field("order_id", "i64"),
            Field("amount", "f64"),
            Field("currency", "str"),
            Field("ok", "bool"),
            Field("thread_id", "u64"),
            Field("thread_name", "str"),
            Field("span_id", "u64"),
            Field("span_kind", "u8"),
            Field("trace_id", "str"),
        ),
    ),
]
"""A newer writer's stream: measures with two fields this revision does not know, a built-in
type it does not know (id 900), and a user-defined type."""


def _evolved() -> dict[str, list[dict]]:
    return {
        "measure": [
            {"ticks": 10, "name": "requests", "unit": "count", "value": 1.0,
             "attributes": '{"route":"/cart"}', "sample_rate": 0.5, "host": "web-1"},
            {"ticks": 20, "name": "requests", "unit": "count", "value": 2.0,
             "attributes": '{"route":"/cart"}', "sample_rate": 0.5, "host": "web-2"},
        ],
        "future_event": [{"ticks": 15, "payload": "not for this reader"}],
        "checkout": [
            {"ticks": 30, "order_id": 7, "amount": 9.5, "currency": "EUR", "ok": True,
             "thread_id": 4242, "thread_name": "MainThread", "span_id": 11, "span_kind": 1,
             "trace_id": TRACE},
            {"ticks": 40, "order_id": 8, "amount": 0.0, "currency": "", "ok": False,
             "thread_id": 4242, "thread_name": "MainThread", "span_id": 0, "span_kind": 0,
             "trace_id": ""},
        ],
    }  # fmt: skip


def _uncompressed() -> dict[str, list[dict]]:
    rows = [
        {
            "ticks": -5,
            "bytes": 2**64 - 1,
            "status": 200,
            "retries": 0,
            "seconds": 0.25,
            "route": "/v1/blocks",
            "labels": {"method": "POST"},
        },
        {
            "ticks": 2**63 - 1,
            "bytes": 0,
            "status": 2**32 - 1,
            "retries": 255,
            "seconds": -0.0,
            "route": "",
            "labels": {},
        },
        {
            "ticks": 7,
            "bytes": 12345,
            "status": 503,
            "retries": 3,
            "seconds": 1.5,
            "route": "/v1/blocks",
            "labels": {"method": "POST", "zone": "eu-west-1a"},
        },
    ]
    return {"request_done": rows, **_measures()}


def layout_of(names: list[str], revision: int = 1) -> list[EventType]:
    known = {**event_types(revision), USER_TYPE.name: USER_TYPE}
    known.update({t.name: t for t in EVOLVED_TYPES} if revision > 2 else {})
    return [known[name] for name in names]


def encode_rows(layout: list[EventType], rows: dict[str, list[dict]], header: dict) -> bytes:
    """The reference encoding of ``rows`` (sections in the order of ``rows``) with ``header``."""
    by_name = {t.name: t for t in layout}
    strings = StringTable()
    sections = []
    for name, records in rows.items():
        event_type = by_name[name]
        columns = [[record[f.name] for record in records] for f in event_type.fields]
        sections.append(encode_section(event_type, columns, strings))
    return encode_block(
        stream_id=uuid.UUID(header["stream_id"]),
        block_id=uuid.UUID(header["block_id"]),
        sequence=header["sequence"],
        begin_ticks=header["begin_ticks"],
        end_ticks=header["end_ticks"],
        object_count=header["object_count"],
        sections=sections,
        strings=strings,
        compress=header["compression"] == 1,
    )


def header_document(data: bytes) -> dict:
    """Every header field, read straight from the bytes (transit-v1.md's table)."""
    (
        magic,
        version,
        header_size,
        compression,
        flags,
        reserved16,
        object_count,
        stream_id,
        block_id,
        sequence,
        begin,
        end,
        payload_size,
        uncompressed_size,
        crc,
        reserved32,
    ) = struct.unpack_from("<4sHHBBHI16s16sQqqIIII", data)
    assert magic == MAGIC and header_size == HEADER_SIZE == 88
    return {
        "magic": magic.decode("ascii"),
        "format_version": version,
        "header_size": header_size,
        "compression": compression,
        "flags": flags,
        "reserved_10": reserved16,
        "object_count": object_count,
        "stream_id": str(uuid.UUID(bytes=stream_id)),
        "block_id": str(uuid.UUID(bytes=block_id)),
        "sequence": sequence,
        "begin_ticks": begin,
        "end_ticks": end,
        "payload_size": payload_size,
        "uncompressed_size": uncompressed_size,
        "payload_crc32": crc,
        "reserved_84": reserved32,
    }


def vectors() -> dict[str, tuple[bytes, dict]]:
    """Each vector's name, bytes and JSON document."""
    spans, span_events = _thread_spans()
    plans = [  # revision 3: a writer newer than this code (EVOLVED_TYPES)
        ("logs", 1, _logs(), None, True, 1),
        ("measures", 2, _measures(), None, True, 1),
        ("thread_spans", 3, spans, span_events, True, 1),
        ("uncompressed", 4, _uncompressed(), None, False, 1),
        ("logs_v2", 5, _logs_v2(), None, True, 2),
        ("spans_v2", 6, _spans_v2(), None, True, 2),
        ("evolved", 7, _evolved(), None, True, 3),
    ]
    result = {}
    for name, number, rows, object_count, compress, revision in plans:
        layout = layout_of(list(rows), revision)
        ticks = [record["ticks"] for records in rows.values() for record in records]
        own = [r["ticks"] for r in rows.get("thread_span_begin", [])[1:]] + [
            r["ticks"] for r in rows.get("thread_span_end", [])
        ]
        header = {
            "stream_id": str(uuid.UUID(f"b10c1a4e-0000-4000-8000-{number:012d}")),
            "block_id": str(uuid.UUID(f"b10c1a4e-0001-4000-8000-{number:012d}")),
            "sequence": 1 if name == "thread_spans" else 0,
            "begin_ticks": min(own or ticks),
            "end_ticks": max(own or ticks),
            "object_count": object_count
            if object_count is not None
            else sum(len(records) for records in rows.values()),
            "compression": 1 if compress else 0,
        }
        data = encode_rows(layout, rows, header)
        document = {
            "layout": layout_to_json(layout),
            "header": header_document(data),
            "rows": rows,
        }
        result[name] = (data, document)
    return result


def to_json(document: dict) -> str:
    """Readable and diff-friendly: one event type, header field or row per line."""

    def one(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    layout = ",\n".join(f"  {one(t)}" for t in document["layout"])
    header = ",\n".join(f"  {one(k)}: {one(v)}" for k, v in document["header"].items())
    rows = ",\n".join(
        f"  {one(name)}: [\n" + ",\n".join(f"   {one(r)}" for r in records) + "\n  ]"
        for name, records in document["rows"].items()
    )
    text = (
        f'{{\n "layout": [\n{layout}\n ],\n "header": {{\n{header}\n }},\n'
        f' "rows": {{\n{rows}\n }}\n}}\n'
    )
    assert json.loads(text) == document
    return text


def main() -> None:
    VECTORS.mkdir(parents=True, exist_ok=True)
    for name, (data, document) in vectors().items():
        (VECTORS / f"{name}.blk").write_bytes(data)
        text = to_json(document)
        (VECTORS / f"{name}.json").write_text(text, encoding="utf-8")
        print(f"wrote schemas/vectors/{name}.blk ({len(data)} bytes) and {name}.json")


if __name__ == "__main__":
    main()
