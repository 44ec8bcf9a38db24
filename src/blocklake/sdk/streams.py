"""Turns drained events into blocks, one stream at a time (runs on the flusher thread).

Blocks are cut so that each is at most ``limit`` bytes, compressed and uncompressed (the server
states its limit), and so that each passes the server's budget for one block
(``blocklake.format.check``): a payload over 1 MiB at most 64 times its compressed size and at
most 32 MiB, and the text its rows expand to within the text budgets. Span streams keep the
spans still open across blocks, so that each block replays them ahead of its own events and
decodes alone (schemas/transit-v1.md, "Spans across blocks").
"""

from __future__ import annotations

import copy
import functools
import time
import uuid
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

import lz4.block

from blocklake.format.check import DEFAULT_BUDGET, check_payload
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import HEADER_SIZE, BlockHeader, FormatError, parse_header
from blocklake.format.schema import EventType, event_types, layout_to_json
from blocklake.sdk import recording, registration
from blocklake.sdk.recording import SpanScope, forget_scope
from blocklake.sdk.repair import Repairs, repair_events, truncate_event

_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, AttributeError)
"""What a value of the wrong type makes the encoder raise."""
_SCOPE_FIELDS = attrgetter("name", "target", "file", "line")
_ticks = itemgetter(1)
"""Where a span event tuple keeps its ticks."""
_UNKNOWN_SCOPE = SpanScope("unknown span")
"""Stands for a transient scope used again after its first span was encoded."""


@dataclass
class Block:
    stream: StreamWriter
    data: bytes
    object_count: int
    raw_size: int = 0
    """Header and uncompressed payload, in bytes."""
    created: float = field(default_factory=time.monotonic)
    """When it was encoded (``time.monotonic``): retries give up past an age."""
    serial: int = 0
    """Its place in the upload queue, set by the uploader."""


@dataclass
class StreamWriter:
    """One stream's identity and sequence, and how its events become sections."""

    tags: tuple[str, ...]
    event_names: tuple[str, ...]
    properties: dict[str, str] = field(default_factory=dict)
    stream_id: uuid.UUID = field(default_factory=uuid.uuid4)
    sequence: int = 0
    registered: bool = False
    tick_range: tuple[int, int] = (0, 0)
    """First and last ticks of the events ``sections`` last encoded."""

    @property
    def event_types(self) -> list[EventType]:
        known = event_types()
        return [known[name] for name in self.event_names]

    @functools.cached_property
    def text_fields(self) -> int:
        """String references a row holds at most (the widest event type's text fields)."""
        return max(sum(f.type == "str" for f in t.fields) for t in self.event_types)

    @functools.cached_property
    def _map_field(self) -> int | None:
        """Where a single-type stream's events keep their map (logs' properties), if any."""
        if len(self.event_names) != 1:
            return None
        kinds = [f.type for f in self.event_types[0].fields]
        return kinds.index("map") if "map" in kinds else None

    @functools.cached_property
    def single_type(self) -> bool:
        return len(self.event_names) == 1

    def text_bytes(self, events: list[tuple]) -> tuple[int, int]:
        """Characters of ``events``' text fields and of their map entries (bytes, for ASCII)."""
        fields = self.event_types[0].fields
        text = sum(
            sum(map(len, map(itemgetter(i), events)))
            for i, field in enumerate(fields)
            if field.type == "str"
        )
        maps = 0
        if self._map_field is not None:
            for mapping in filter(None, map(itemgetter(self._map_field), events)):
                maps += sum(map(len, mapping)) + sum(map(len, mapping.values()))
        return text, maps

    def map_entries(self, events: list[tuple]) -> int:
        """Map entries ``events`` hold (C-level: a length per event that has a map)."""
        index = self._map_field
        return 0 if index is None else sum(map(len, filter(None, map(itemgetter(index), events))))

    @property
    def layout(self) -> dict[int, EventType]:
        """The stream's layout as the server reads it (type id to event type)."""
        return {event_type.id: event_type for event_type in self.event_types}

    def registration(self, process_id: str) -> dict:
        return {
            "stream_id": str(self.stream_id),
            "process_id": process_id,
            "tags": list(self.tags),
            "properties": registration.properties(self.properties),  # a thread's name, say
            "layout": layout_to_json(self.event_types),
        }

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        """Columns of each event type present; by default the stream holds one type, ticks
        first."""
        (event_type,) = self.event_types
        columns = list(zip(*events, strict=True))
        # Threads share the log, metric and async buffers: appends may be out of order.
        self.tick_range = min(columns[0]), max(columns[0])
        return [encode_section(event_type, columns, strings)]

    bytes_per_event: float = 64.0
    """Bytes per event (uncompressed, which bounds compressed) of the last block, to size the
    next one below the limit; at first a guess on the high side."""

    def encode(self, events: list[tuple]) -> Block:
        """One block of all ``events``, whatever its size."""
        block = self._encode(events, limit=None)
        assert block is not None
        return block

    def blocks(self, events: list[tuple], limit: int) -> tuple[list[Block], Repairs]:
        """Blocks of at most ``limit`` bytes holding ``events``; values the encoder cannot
        take are repaired or dropped alone, and a record too large alone is truncated."""
        repairs = Repairs()
        blocks: list[Block] = []
        start = 0
        while start < len(events):
            step = min(len(events) - start, max(1, int(0.8 * limit / self.bytes_per_event)))
            chunk = events[start : start + step]
            try:
                block = self._encode(chunk, limit)
            except _ENCODE_ERRORS:
                chunk = repair_events(self.event_types[0], chunk, repairs)
                events[start : start + step] = chunk
                if not chunk:
                    continue
                block = self._encode(chunk, limit)
            if block is None:
                if len(chunk) > 1:  # too large: halve until it fits
                    self.bytes_per_event = 2 * limit / len(chunk)
                    continue
                # Text cut below the ratio floor: the block passes whatever it compresses to.
                cut = min(limit // 8, MAX_RECORD_TEXT_BYTES)
                while block is None and cut >= 64:
                    block = self._encode([truncate_event(chunk[0], cut)], limit)
                    cut //= 8
                if block is None:
                    repairs.drop()
                    start += 1
                    continue
                repairs.truncated += 1
            self.bytes_per_event = block.raw_size / len(chunk)
            blocks.append(block)
            start += len(chunk)
        return blocks, repairs

    def _encode(self, events: list[tuple], limit: int | None) -> Block | None:
        """None, with the writer's state as it was, if the block would be over ``limit``."""
        saved = self._state()
        strings = StringTable()
        try:
            sections = self.sections(events, strings)
            begin, end = self.tick_range
            data = encode_block(
                stream_id=self.stream_id,
                sequence=self.sequence,
                begin_ticks=begin,
                end_ticks=end,
                object_count=len(events),
                sections=sections,
                strings=strings,
            )
        except BaseException:
            self._restore(saved)
            raise
        header = parse_header(data)
        raw_size = HEADER_SIZE + header.uncompressed_size
        if limit is not None and (
            max(len(data), raw_size) > limit
            or not _within_budget(data, header, strings, self, events, self._replayed(saved))
        ):
            self._restore(saved)
            return None
        self.sequence += 1
        self._committed()
        return Block(self, data, len(events), raw_size)

    def _state(self) -> object:
        """What ``sections`` changes, to undo an attempt that is thrown away."""
        return None

    def _restore(self, state: object) -> None:
        pass

    def _replayed(self, state: object) -> int:
        """Rows a block replays besides its events (span begins still open), from ``_state``."""
        return 0

    def _committed(self) -> None:
        """The attempt became a block."""


@dataclass
class ThreadSpanWriter(StreamWriter):
    """Events are (scope id, ticks), the id negated for an end. Span ids, parents and depths are
    given here, off the record path, by walking the events with the stack of open spans."""

    open_spans: list[tuple] = field(default_factory=list)
    """(ticks, span id, parent span id, depth, scope id) of each open span, outermost first."""
    last_span_id: int = 0
    closed_scopes: list[int] = field(default_factory=list)
    """Scope ids of the spans the last attempt closed: transient ones are forgotten on commit."""

    def _state(self) -> object:
        return copy.copy(self.open_spans), self.last_span_id

    def _restore(self, state: object) -> None:
        self.open_spans, self.last_span_id = state  # type: ignore[misc]

    def _replayed(self, state: object) -> int:
        return len(state[0])  # type: ignore[index]

    def _committed(self) -> None:
        for scope_id in self.closed_scopes:
            forget_scope(scope_id)
        self.closed_scopes = []

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        # Begins go to int columns and the stack holds their indexes: no tuple per span, so
        # the walk allocates nothing the garbage collector tracks (it would run far more often).
        ticks, ids, parents, depths, scopes = (list(column) for column in _columns(self.open_spans))
        stack = list(range(len(ids)))  # the open spans, replayed first
        end_ticks: list[int] = []
        end_ids: list[int] = []
        push, pop = stack.append, stack.pop
        add_ticks, add_id, add_parent, add_depth, add_scope = (
            ticks.append,
            ids.append,
            parents.append,
            depths.append,
            scopes.append,
        )
        add_end_ticks, add_end_id = end_ticks.append, end_ids.append
        span_id = self.last_span_id
        for scope_id, tick in events:
            if scope_id > 0:
                span_id += 1
                push(len(ids))
                add_ticks(tick)
                add_id(span_id)
                add_parent(ids[stack[-2]] if len(stack) > 1 else 0)
                add_depth(len(stack) - 1)
                add_scope(scope_id)
            elif stack and scopes[stack[-1]] == -scope_id:  # the end of the innermost span
                add_end_ticks(tick)
                add_end_id(ids[pop()])
            else:
                index = len(stack) - 1
                while index >= 0 and scopes[stack[index]] != -scope_id:
                    index -= 1
                # index < 0: its begin was dropped when the buffer was full
                while index >= 0 and len(stack) > index:  # ends lost close with their parent
                    add_end_ticks(tick)
                    add_end_id(ids[pop()])
        self.last_span_id = span_id
        self.open_spans = [(ticks[i], ids[i], parents[i], depths[i], scopes[i]) for i in stack]
        # one thread appended these, in the order of a monotonic clock
        self.tick_range = events[0][1], events[-1][1]
        columns = (ticks, ids, parents, depths, scopes)
        self._note_transient(scopes)
        return self._span_sections(columns, end_ticks, end_ids, strings)

    def _note_transient(self, scope_ids: list[int]) -> None:
        """Transient scopes of spans that closed in this block: forgotten once it is sent."""
        if recording.transient_scopes_made():
            still_open = {entry[4] for entry in self._open_entries()}
            self.closed_scopes = [
                i for i in scope_ids if i >= recording.TRANSIENT_IDS and i not in still_open
            ]

    def _open_entries(self) -> list[tuple]:
        return self.open_spans

    def _span_sections(
        self,
        begins: tuple[list[int], ...],
        end_ticks: list[int],
        end_ids: list[int],
        strings: StringTable,
    ) -> list[bytes]:
        """``begins``: columns ticks, span ids, parents, depths, scope ids."""
        begin_type, end_type = self.event_types
        sections = []
        scope_ids = begins[4]
        if scope_ids:
            registry = SpanScope.registry
            fields = {i: _SCOPE_FIELDS(registry.get(i, _UNKNOWN_SCOPE)) for i in set(scope_ids)}
            by_field = [{i: f[k] for i, f in fields.items()}.__getitem__ for k in range(4)]
            columns = [*begins[:4], *(list(map(get, scope_ids)) for get in by_field)]
            sections.append(encode_section(begin_type, columns, strings))
        if end_ids:
            sections.append(encode_section(end_type, [end_ticks, end_ids], strings))
        return sections


def _columns(entries: list[tuple]) -> tuple[tuple, ...]:
    """(ticks, span id, parent, depth, scope id) entries as five columns."""
    return tuple(zip(*entries, strict=True)) if entries else ((),) * 5


@dataclass
class AsyncSpanWriter(ThreadSpanWriter):
    """Events are (scope id, ticks, span id, parent id), the scope id negated for an end."""

    open_async: dict[int, tuple] = field(default_factory=dict)

    def _state(self) -> object:
        return dict(self.open_async)

    def _restore(self, state: object) -> None:
        self.open_async = state  # type: ignore[assignment]

    def _replayed(self, state: object) -> int:
        return len(state)  # type: ignore[arg-type]

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        open_spans = self.open_async
        begins = list(open_spans.values())
        end_ticks: list[int] = []
        end_ids: list[int] = []
        for scope_id, ticks, span_id, parent_id in events:
            if scope_id > 0:
                parent = open_spans.get(parent_id)
                depth = parent[3] + 1 if parent else (1 if parent_id else 0)
                entry = (ticks, span_id, parent_id, depth, scope_id)
                open_spans[span_id] = entry
                begins.append(entry)
            elif open_spans.pop(span_id, None) is not None:
                end_ticks.append(ticks)
                end_ids.append(span_id)
        self.tick_range = min(map(_ticks, events)), max(map(_ticks, events))
        columns = _columns(begins)
        self._note_transient(columns[4])
        return self._span_sections(columns, end_ticks, end_ids, strings)

    def _open_entries(self) -> list[tuple]:
        return list(self.open_async.values())


MAX_RECORD_TEXT_BYTES = 256 * 1024
"""A record too large for a block alone keeps at most this many bytes of each text: below the
server's 1 MiB floor for the decompression ratio, whatever the text compresses to."""


def _within_budget(
    data: bytes,
    header: BlockHeader,
    strings: StringTable,
    writer: StreamWriter,
    events: list[tuple],
    replayed: int,
) -> bool:
    """Whether the server's budget for one block takes it: the decompression ratio always (one
    comparison); the text the rows expand to by a bound (every string reference, of each row's
    text fields and map entries, as long as the longest string), and only when that bound fails
    (a long string in a large block) by the server's own check of the payload."""
    budget = DEFAULT_BUDGET
    compressed = len(data) - header.header_size
    size = header.uncompressed_size
    if size > budget.payload_limit(compressed):
        return False
    longest = strings.longest  # UTF-8 bytes, measured as the block was encoded
    maps = 2 * writer.map_entries(events) * longest
    text = size + (len(events) + replayed) * writer.text_fields * longest
    if maps <= budget.max_map_bytes and text + maps <= budget.max_expanded_bytes:
        return True
    ascii = all(map(str.isascii, strings.index))  # then the texts' lengths are their bytes
    if ascii and writer.single_type and not replayed:  # logs, metrics: sum the texts themselves
        text, maps = writer.text_bytes(events)
        return maps <= budget.max_map_bytes and size + text + maps <= budget.max_expanded_bytes
    payload = lz4.block.decompress(memoryview(data)[header.header_size :], uncompressed_size=size)
    try:
        check_payload(payload, writer.layout, header.object_count, budget, complete=False)
    except FormatError:
        return False
    return True


def log_writer(properties: dict[str, str]) -> StreamWriter:
    return StreamWriter(("log",), ("log_entry",), properties)


def metrics_writer(properties: dict[str, str]) -> StreamWriter:
    return StreamWriter(("metrics",), ("measure",), properties)


def async_writer(properties: dict[str, str]) -> AsyncSpanWriter:
    return AsyncSpanWriter(("async",), ("async_span_begin", "async_span_end"), properties)


def thread_writer(properties: dict[str, str]) -> ThreadSpanWriter:
    return ThreadSpanWriter(("cpu",), ("thread_span_begin", "thread_span_end"), properties)
