"""Report B of issue 12, item 2: an ``attachment`` event in a block (anyone with the ingest key
can write one) must hold a lowercase UUID, a non-negative size and a SHA-256 in lowercase hex,
as a declaration must: otherwise the block is refused (400 naming the field), nothing stored,
and no ``link`` such as ``/v1/attachments/../../v1/query`` ever reaches the table."""

from __future__ import annotations

import uuid

import pytest

from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types
from tests.handlers.test_ingest_refusals import Ingest, ingest, refused  # noqa: F401

GOOD = {"attachment_id": str(uuid.UUID(int=0x5EED)), "size": 5, "sha256": "ab" * 32}


def attachment_block(stream_id: str, **fields: object) -> bytes:
    row = {**GOOD, **fields}
    strings = StringTable()
    section = encode_section(
        event_types(1)["attachment"],
        [
            [2_000],
            [row["attachment_id"]],
            ["crash.dmp"],
            ["application/octet-stream"],
            [row["size"]],
            [row["sha256"]],
            [None],
        ],
        strings,
    )
    return encode_block(
        stream_id=uuid.UUID(stream_id),
        sequence=0,
        begin_ticks=2_000,
        end_ticks=2_000,
        object_count=1,
        sections=[section],
        strings=strings,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"attachment_id": "../../v1/query?x="},
        {"attachment_id": ""},
        {"attachment_id": str(uuid.UUID(int=0x5EED1)).upper()},
        {"attachment_id": f"{uuid.UUID(int=0x5EED2)}\n"},
        {"size": -5},
        {"sha256": "not-a-sha"},
        {"sha256": "AB" * 32},
        {"sha256": "ab" * 32 + "\n"},
    ],
    ids=lambda change: repr(change)[:40],
)
def test_a_forged_attachment_event_is_refused_naming_its_field(
    ingest: Ingest,  # noqa: F811
    change: dict,
) -> None:
    stream_id = ingest.stream("attachment")
    (field,) = change
    refused(ingest, "/v1/blocks", attachment_block(stream_id, **change), 400, f"attachment.{field}")


def test_a_valid_attachment_event_is_stored(ingest: Ingest) -> None:  # noqa: F811
    stream_id = ingest.stream("attachment")
    status, answer = ingest.call("/v1/blocks", attachment_block(stream_id))
    assert status in (200, 201), answer


def test_a_block_stored_before_the_check_gets_no_link_from_a_bad_id() -> None:
    """The table's ``link`` is built only from a lowercase UUID."""
    import pyarrow as pa

    from blocklake.etl import rows
    from blocklake.format.arrow import decode_block
    from tests.handlers.test_rows import BLOCK, LAYOUT, PROCESS, STREAM

    good = str(uuid.uuid4())
    block = attachment_block(STREAM, attachment_id=good)
    section = decode_block(block, LAYOUT).sections["attachment"]
    ids = section["attachment_id"].combine_chunks()
    for forged, link in ((good, f"/v1/attachments/{good}"), ("../../v1/query?x=", None)):
        column = pa.array([forged], pa.string()).cast(ids.type)
        table = rows.attachments(
            section.set_column(
                section.schema.get_field_index("attachment_id"), "attachment_id", column
            ),
            PROCESS,
            STREAM,
            BLOCK,
        )
        assert table["link"].to_pylist() == [link]
