"""The committed golden vectors (schemas/vectors/): their bytes decode to the committed header
and rows, and the reference encoder still writes exactly those bytes, so an accidental change of
the wire format fails here. Regenerate on purpose with ``tests/format/make_vectors.py``."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path

import lz4.block
import pytest

from blocklake.format.arrow import decode_block
from blocklake.format.check import decompress
from blocklake.format.encode import StringTable
from blocklake.format.header import parse_header
from blocklake.format.schema import layout_from_json

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "schemas" / "vectors"
NAMES = ["logs", "measures", "thread_spans", "uncompressed", "logs_v2", "spans_v2", "evolved"]
V1_NAMES = NAMES[:4]
"""Written by the revision 1 encoder: they decode and convert unchanged forever."""


def _generator():
    spec = importlib.util.spec_from_file_location(
        "blocklake_make_vectors", Path(__file__).with_name("make_vectors.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_vectors = _generator()


def load(name: str) -> tuple[bytes, dict]:
    data = (VECTORS / f"{name}.blk").read_bytes()
    document = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return data, document


def as_json_rows(rows: list[dict]) -> list[dict]:
    """Decoded rows as the vectors write them: maps as objects."""
    return [{k: dict(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows]


def test_every_vector_is_committed() -> None:
    assert sorted(p.stem for p in VECTORS.glob("*.blk")) == sorted(NAMES)
    assert sorted(p.stem for p in VECTORS.glob("*.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_to_its_rows_and_header(name: str) -> None:
    data, document = load(name)
    layout = layout_from_json(document["layout"])
    decoded = decode_block(data, layout)
    expected = document["header"]
    header = decoded.header
    assert data[:4].decode("ascii") == expected["magic"] == "BLKL"
    assert struct.unpack_from("<HH", data, 4) == (
        expected["format_version"],
        expected["header_size"],
    )
    assert data[9] == expected["flags"] == 0
    assert struct.unpack_from("<H", data, 10)[0] == expected["reserved_10"] == 0
    assert struct.unpack_from("<I", data, 84)[0] == expected["reserved_84"] == 0
    assert {
        "header_size": header.header_size,
        "compression": header.compression,
        "object_count": header.object_count,
        "stream_id": str(header.stream_id),
        "block_id": str(header.block_id),
        "sequence": header.sequence,
        "begin_ticks": header.begin_ticks,
        "end_ticks": header.end_ticks,
        "payload_size": header.payload_size,
        "uncompressed_size": header.uncompressed_size,
        "payload_crc32": header.payload_crc32,
    } == {
        k: v
        for k, v in expected.items()
        if k not in ("magic", "format_version", "flags", "reserved_10", "reserved_84")
    }
    assert list(decoded.sections) == list(document["rows"])
    for type_name, rows in document["rows"].items():
        assert as_json_rows(decoded.sections[type_name].to_pylist()) == rows


@pytest.mark.parametrize("name", NAMES)
def test_reference_encoder_writes_the_same_payload(name: str) -> None:
    """Independent of the lz4 library's version: the decompressed payload is byte-identical."""
    data, document = load(name)
    layout = list(layout_from_json(document["layout"]).values())
    again = make_vectors.encode_rows(layout, document["rows"], document["header"])
    assert decompress(again, parse_header(again)) == decompress(data, parse_header(data))


@pytest.mark.parametrize("name", NAMES)
def test_reference_encoder_writes_the_same_bytes(name: str) -> None:
    data, document = load(name)
    layout = list(layout_from_json(document["layout"]).values())
    again = make_vectors.encode_rows(layout, document["rows"], document["header"])
    assert again == data
    # and the generator, run now, produces what is committed
    generated, generated_document = make_vectors.vectors()[name]
    assert generated == data
    assert generated_document == document


def test_uncompressed_vector_is_stored_as_is() -> None:
    data, _document = load("uncompressed")
    header = parse_header(data)
    assert header.compression == 0
    assert header.payload_size == header.uncompressed_size
    assert data[header.header_size :] == decompress(data, header)


def test_compressed_vectors_are_lz4_blocks_without_size_prefix() -> None:
    for name in ("logs", "measures", "thread_spans", "logs_v2", "spans_v2", "evolved"):
        data, document = load(name)
        header = parse_header(data)
        payload = lz4.block.decompress(
            data[header.header_size :], uncompressed_size=header.uncompressed_size
        )
        assert len(payload) == header.uncompressed_size == document["header"]["uncompressed_size"]


def test_spans_v2_vector_is_what_the_sdk_writer_produces() -> None:
    """The SDK's ThreadSpanWriter, fed the events the record path makes (span ids given there,
    a root's trace context, attributes added to an open span, an end left by an exception),
    writes this vector's payload."""
    from blocklake.sdk.recording import SpanScope, TraceContext
    from blocklake.sdk.streams import thread_writer

    data, document = load("spans_v2")
    begins = document["rows"]["thread_span_begin"]
    scopes = {
        row["name"]: SpanScope(row["name"], row["target"], row["file"], row["line"])
        for row in begins
    }
    handle, load_, render = scopes["handle_request"], scopes["load_cart"], scopes["render"]
    cleanup, vacuum = scopes["cleanup"], scopes["vacuum"]
    context = TraceContext(make_vectors.TRACE, 2**63 + 5)
    attributes = {"route": "/cart", "status_code": 500, "cached": False, "ratio": 0.25}
    events = [
        (handle.id, 100, 11, context),
        (0, 105, attributes),
        (load_.id, 110, 12),
        (load_.end_id, 115, "app.db.Timeout", "no answer in 5 s"),
        (render.id, 120, 13),
        (0, 121, {"route": "/cart"}),
        (render.end_id, 125),
        (handle.end_id, 130, "ValueError", "bad cart"),
        (cleanup.id, 140, 14, None),  # a root of this process: its id is its trace's
        (vacuum.id, 142, 15),
        (vacuum.end_id, 145),
        (cleanup.end_id, 150),
    ]
    strings = StringTable()
    sections = thread_writer({}).sections(events, strings)
    payload = strings.encode() + struct.pack("<II", len(sections), 0) + b"".join(sections)
    assert payload == decompress(data, parse_header(data))


def test_vectors_hold_no_values_json_cannot_carry() -> None:
    for name in NAMES:
        _, document = load(name)
        for rows in document["rows"].values():
            for row in rows:
                for value in row.values():
                    assert not (isinstance(value, float) and not math.isfinite(value))
