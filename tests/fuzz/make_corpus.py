"""Writes the seed corpus of ``tests.fuzz.fuzz_blocks`` into ``tests/fuzz/corpus``: small valid
blocks of every built-in type (compressed and not) and the small hostile blocks of issue 10.
Inputs a fuzzer found are added by hand, named ``found-<what>``.

    python -m tests.fuzz.make_corpus
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from blocklake.format.encode import StringTable, encode_block, encode_section
from tests import hostile

CORPUS = Path(__file__).parent / "corpus"
KNOWN = hostile.KNOWN
STREAM_ID = uuid.UUID(int=0x5EED)
"""Any id: the ingest harness puts its registered stream's id in every input."""


def _seed_blocks() -> list[bytes]:
    strings = StringTable()
    sections = [
        encode_section(
            KNOWN["log_entry"],
            [[10, 11], [4, 2], ["app", "db"], ["hello", "é"], [{"k": "v"}, None]],
            strings,
        ),
        encode_section(KNOWN["measure"], [[12], ["cpu"], ["%"], [1.5]], strings),
        encode_section(
            KNOWN["thread_span_begin"],
            [[1, 2], [1, 2], [0, 1], [0, 1], ["a", "b"], ["t", "t"], ["f", "f"], [1, 2]],
            strings,
        ),
        encode_section(KNOWN["thread_span_end"], [[3], [2]], strings),
        encode_section(
            KNOWN["async_span_begin"],
            [[4], [9], [0], [0], ["req"], ["web"], ["f"], [7]],
            strings,
        ),
        encode_section(KNOWN["async_span_end"], [[5], [9]], strings),
    ]
    blocks = []
    for compress in (True, False):
        blocks.append(
            encode_block(
                stream_id=STREAM_ID,
                block_id=uuid.UUID(int=1 + compress),
                sequence=0,
                begin_ticks=1,
                end_ticks=12,
                object_count=6,
                sections=sections,
                strings=strings,
                compress=compress,
            )
        )
    stream = str(STREAM_ID)
    small = {"span bomb", "long string spans", "map bomb", "trailing zeros", "1 GiB announced"}
    blocks += [hostile.AMPLIFIERS[name](stream) for name in sorted(small)]
    return blocks


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for data in _seed_blocks():
        (CORPUS / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    main()
