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
import json
import time
import uuid
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

import lz4.block

from blocklake.format.check import DEFAULT_BUDGET, check_payload
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.header import HEADER_SIZE, BlockHeader, FormatError, parse_header
from blocklake.format.schema import (
    REFERENCE_TYPES,
    EventType,
    Field,
    event_types,
    layout_to_json,
)
from blocklake.sdk import recording, registration
from blocklake.sdk.recording import AsyncSpan, SpanScope, forget_scope, trace_hex
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
    recorded: int | None = None
    """Leading fields of the event type that the record path's tuples hold (the rest are
    derived here, off the record path); None: all of them."""
    declared: tuple[EventType, ...] = ()
    """The stream's event types when they are not built in (user-defined types)."""

    @functools.cached_property
    def event_types(self) -> list[EventType]:
        if self.declared:
            return list(self.declared)
        known = event_types()
        return [known[name] for name in self.event_names]

    @functools.cached_property
    def recorded_type(self) -> EventType:
        """The single event type cut to the fields the record path's tuples hold (repairs
        check these)."""
        event_type = self.event_types[0]
        return EventType(event_type.id, event_type.name, event_type.fields[: self.recorded])

    @functools.cached_property
    def text_fields(self) -> int:
        """String references a row holds at most (the widest event type's text fields)."""
        return max(sum(f.type in REFERENCE_TYPES for f in t.fields) for t in self.event_types)

    @functools.cached_property
    def _map_field(self) -> int | None:
        """Where a single-type stream's events keep their map (logs' properties), if any."""
        if len(self.event_names) != 1:
            return None
        kinds = [f.type for f in self.event_types[0].fields]
        return kinds.index("map") if "map" in kinds else None

    @functools.cached_property
    def single_type(self) -> bool:
        """One event type whose texts are all in the recorded tuples as ``str`` (so
        ``text_bytes`` can sum them)."""
        fields = self.event_types[0].fields
        derived = fields[self.recorded :] if self.recorded is not None else ()
        return (
            len(self.event_names) == 1
            and all(f.type != "attrs" for f in fields)
            and all(f.type not in REFERENCE_TYPES for f in derived)
        )

    def text_bytes(self, events: list[tuple]) -> tuple[int, int]:
        """Characters of ``events``' text fields and of their map entries (bytes, for ASCII)."""
        fields = self.event_types[0].fields[: self.recorded]
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
        # Tuples without the later fields (made by hand, as revision 1 did): None there.
        columns += [(None,) * len(events)] * (len(event_type.fields) - len(columns))
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
                chunk = repair_events(self.recorded_type, chunk, repairs)
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
        # Begins go to columns and the stack holds their indexes: no tuple per span, so the
        # walk allocates nothing the garbage collector tracks (it would run far more often).
        # What few spans have (a remote parent, attributes, an exception) goes to dicts by
        # index, so the common span costs one append per column it always has.
        begins = _Begins.of(self.open_spans)
        ticks, ids, parents, depths, scopes, traces = begins.columns
        remotes, attributes = begins.remotes, begins.attributes
        stack = list(range(len(ids)))  # the open spans, replayed first
        end_ticks: list[int] = []
        end_ids: list[int] = []
        failures: dict[int, tuple] = {}
        push, pop = stack.append, stack.pop
        add_ticks, add_id, add_parent, add_depth, add_scope, add_trace = (
            ticks.append,
            ids.append,
            parents.append,
            depths.append,
            scopes.append,
            traces.append,
        )
        add_end_ticks, add_end_id = end_ticks.append, end_ids.append
        span_id = self.last_span_id
        for event in events:
            scope_id = event[0]
            if scope_id > 0:
                push(len(ids))
                add_ticks(event[1])
                try:
                    add_id(event[2])
                    context = event[3] if len(stack) == 1 else None  # a root's, maybe None
                except IndexError:  # (scope, ticks) made by hand, as revision 1 recorded
                    if len(ids) < len(ticks):
                        span_id += 1
                        add_id(span_id)
                    context = None
                if len(stack) > 1:
                    parent = stack[-2]
                    add_parent(ids[parent])
                    add_trace(traces[parent])
                else:  # a root: parent and trace from the context it began in, if any
                    if context is None:
                        add_parent(0)
                        add_trace(ids[-1])
                    elif type(context) is AsyncSpan:
                        add_parent(context.span_id)
                        add_trace(context.trace)
                    else:
                        add_parent(0)
                        add_trace(context.trace)
                        remotes[len(ids) - 1] = context.span_id
                add_depth(len(stack) - 1)
                add_scope(scope_id)
            elif scope_id == 0:  # attributes for the innermost open span
                if stack:
                    attributes[stack[-1]] = merged(attributes.get(stack[-1]), event[2])
            elif stack and scopes[stack[-1]] == -scope_id:  # the end of the innermost span
                add_end_ticks(event[1])
                add_end_id(ids[pop()])
                if len(event) > 2:  # left by an exception: (type, message)
                    failures[len(end_ids) - 1] = event[2:]
            else:
                index = len(stack) - 1
                while index >= 0 and scopes[stack[index]] != -scope_id:
                    index -= 1
                # index < 0: its begin was dropped when the buffer was full
                while index >= 0 and len(stack) > index:  # ends lost close with their parent
                    add_end_ticks(event[1])
                    add_end_id(ids[pop()])
                    if len(event) > 2:
                        failures[len(end_ids) - 1] = event[2:]
        self.last_span_id = span_id
        self.open_spans = [begins.entry(i) for i in stack]
        # one thread appended these, in the order of a monotonic clock
        self.tick_range = events[0][1], events[-1][1]
        self._note_transient(scopes)
        return self._span_sections(begins, (end_ticks, end_ids, failures), strings)

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
        self, begins: _Begins, ends: tuple[list, list, dict], strings: StringTable
    ) -> list[bytes]:
        """``ends``: ticks, span ids, and (exception type, message) by index of the failed."""
        begin_type, end_type = self.event_types
        sections = []
        ticks, ids, parents, depths, scope_ids, traces = begins.columns
        if scope_ids:
            registry = SpanScope.registry
            fields = {i: _SCOPE_FIELDS(registry.get(i, _UNKNOWN_SCOPE)) for i in set(scope_ids)}
            by_field = [{i: f[k] for i, f in fields.items()}.__getitem__ for k in range(4)]
            columns = [
                ticks,
                ids,
                parents,
                depths,
                *(list(map(get, scope_ids)) for get in by_field),
                *trace_columns(traces),
                _sparse(begins.remotes, len(ids), 0),
                _sparse(begins.attributes, len(ids), None),
            ]
            sections.append(encode_section(begin_type, columns, strings))
        end_ticks, end_ids, failures = ends
        if end_ids:
            statuses = _sparse(dict.fromkeys(failures, 1), len(end_ids), 0)
            types = _sparse({i: f[0] for i, f in failures.items()}, len(end_ids), "")
            messages = _sparse({i: f[1] for i, f in failures.items()}, len(end_ids), "")
            columns = [end_ticks, end_ids, statuses, types, messages]
            sections.append(encode_section(end_type, columns, strings))
        return sections


def trace_columns(traces: list[int | str]) -> tuple[list, list]:
    """``trace_id`` and ``trace_root`` columns: a trace id taken from a context as text, a trace
    this process started as its root span's id (the reader makes its text: no formatting and no
    string per span here)."""
    if str not in set(map(type, traces)):
        return [""] * len(traces), traces
    return (
        [trace if type(trace) is str else "" for trace in traces],
        [trace if type(trace) is int else 0 for trace in traces],
    )


def _sparse(values: dict[int, object], length: int, default: object) -> list:
    """A column of ``length`` rows: ``default`` but at the indexes ``values`` gives."""
    column = [default] * length
    for index, value in values.items():
        column[index] = value
    return column


@dataclass
class _Begins:
    """Begin columns of a block: ticks, span ids, parents, depths, scope ids, traces (a root's
    span id or a trace id), and by index the remote parents and attributes of the few that
    have them."""

    columns: tuple[list, ...]
    remotes: dict[int, int]
    attributes: dict[int, object]

    @classmethod
    def of(cls, entries: list) -> _Begins:
        """From open span entries (``entry``), replayed ahead of a block's own begins."""
        if not entries:
            return cls(tuple([] for _ in range(6)), {}, {})
        columns = [list(column) for column in zip(*entries, strict=True)]
        remotes = {i: remote for i, remote in enumerate(columns[6]) if remote}
        attributes = {i: values for i, values in enumerate(columns[7]) if values}
        return cls(tuple(columns[:6]), remotes, attributes)

    def entry(self, index: int) -> tuple:
        """(ticks, span id, parent, depth, scope id, trace, remote parent, attributes)."""
        return (
            *(column[index] for column in self.columns),
            self.remotes.get(index, 0),
            self.attributes.get(index),
        )


def merged(current: dict | str | None, added: dict) -> dict:
    """Attributes ``current`` (a dict, a frozen set's text or None) with ``added`` over them."""
    if not current:
        return dict(added)
    base = json.loads(current) if isinstance(current, str) else current
    return {**base, **added}


@dataclass
class AsyncSpanWriter(ThreadSpanWriter):
    """Events as ``recording.async_events`` documents; the scope id negated for an end, 0 for
    attributes added to an open span."""

    open_async: dict[int, list] = field(default_factory=dict)

    def _state(self) -> object:
        return {span_id: list(entry) for span_id, entry in self.open_async.items()}

    def _restore(self, state: object) -> None:
        self.open_async = state  # type: ignore[assignment]

    def _replayed(self, state: object) -> int:
        return len(state)  # type: ignore[arg-type]

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        open_spans = self.open_async
        entries = list(open_spans.values())
        end_ticks: list[int] = []
        end_ids: list[int] = []
        failures: dict[int, tuple] = {}
        for event in events:
            scope_id, span_id = event[0], event[2]
            if scope_id > 0:
                parent_id = event[3]
                parent = open_spans.get(parent_id)
                depth = parent[3] + 1 if parent else (1 if parent_id else 0)
                entry = [event[1], span_id, parent_id, depth, scope_id, *event[4:7]]
                open_spans[span_id] = entry
                entries.append(entry)
            elif scope_id == 0:
                entry = open_spans.get(span_id)
                if entry is not None:
                    entry[7] = merged(entry[7], event[3])
            elif open_spans.pop(span_id, None) is not None:
                end_ticks.append(event[1])
                end_ids.append(span_id)
                if len(event) > 3:
                    failures[len(end_ids) - 1] = event[3:]
        self.tick_range = min(map(_ticks, events)), max(map(_ticks, events))
        begins = _Begins.of(entries)
        self._note_transient(begins.columns[4])
        return self._span_sections(begins, (end_ticks, end_ids, failures), strings)

    def _open_entries(self) -> list[tuple]:
        return list(self.open_async.values())


@dataclass
class LogWriter(StreamWriter):
    """Log tuples hold the thread, the innermost thread span and its trace, and the context
    (``recording.logs``): resolved here into the correlation columns, once per distinct
    combination in the block."""

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        (event_type,) = self.event_types
        columns = list(zip(*events, strict=True))
        self.tick_range = min(columns[0]), max(columns[0])
        if len(columns) == 5:  # made by hand without correlation, as revision 1 did
            columns.extend(
                [
                    (None,) * len(events),
                    (0,) * len(events),
                    (0,) * len(events),
                    (None,) * len(events),
                ]
            )
        derived = correlation_columns(*columns[5:9])
        return [encode_section(event_type, [*columns[:5], *derived], strings)]


def correlation_columns(
    threads: tuple, thread_spans: tuple, thread_traces: tuple, contexts: tuple
) -> list[list | tuple]:
    """thread id, thread name, span id, span kind and trace id columns of logs (or
    user-defined events) from what the record path kept. Without async spans or trace contexts
    (most logs), column by column at C speed; else per distinct combination (``_correlation``)."""
    known = recording.thread_names
    names = {thread: (thread or 0, _thread_name(known.get(thread))) for thread in set(threads)}
    if contexts.count(None) == len(contexts):
        traces = {t: trace_hex(t) if t else "" for t in set(thread_traces)}
        if len(names) == 1:
            ((thread_id, thread_name),) = names.values()
            thread_ids, thread_names = [thread_id] * len(threads), [thread_name] * len(threads)
        else:
            thread_ids = [names[thread][0] for thread in threads]
            thread_names = [names[thread][1] for thread in threads]
        return [
            thread_ids,
            thread_names,
            thread_spans,
            list(map(bool, thread_spans)),  # 1 (a thread span) where there is one, else 0
            list(map(traces.__getitem__, thread_traces)),
        ]
    keys = list(zip(threads, thread_spans, thread_traces, contexts, strict=True))
    resolved = {key: _correlation(*key) for key in dict.fromkeys(keys)}
    return list(zip(*map(resolved.__getitem__, keys), strict=True))


def _thread_name(thread: object) -> str:
    return getattr(thread, "name", "") if thread is not None else ""


def _correlation(
    thread: int | None, thread_span: int, thread_trace: int | str, context: object
) -> tuple[int, str, int, int, str]:
    """(thread id, thread name, span id, span kind, trace id) of a log: the innermost of the
    thread's open span and the context's async span (ids grow, so the later one), else the
    remote span of a trace context."""
    thread_id = thread or 0
    name = _thread_name(recording.thread_names.get(thread))
    if type(context) is AsyncSpan and context.span_id > thread_span:
        return thread_id, name, context.span_id, SPAN_KIND_ASYNC, trace_hex(context.trace)
    if thread_span:
        return thread_id, name, thread_span, SPAN_KIND_THREAD, trace_hex(thread_trace)
    if context is not None:
        kind = SPAN_KIND_REMOTE if context.span_id else SPAN_KIND_NONE
        return thread_id, name, context.span_id, kind, context.trace
    return thread_id, name, 0, SPAN_KIND_NONE, ""


SPAN_KIND_NONE, SPAN_KIND_THREAD, SPAN_KIND_ASYNC, SPAN_KIND_REMOTE = 0, 1, 2, 3
"""``log_entry.span_kind`` (events.toml)."""


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


@dataclass
class UserEventWriter(StreamWriter):
    """A user-defined type's events: (ticks, *fields, thread, thread span, its trace,
    context), the correlation resolved as for logs."""

    def sections(self, events: list[tuple], strings: StringTable) -> list[bytes]:
        (event_type,) = self.event_types
        columns = list(zip(*events, strict=True))
        self.tick_range = min(columns[0]), max(columns[0])
        derived = correlation_columns(*columns[-4:])
        return [encode_section(event_type, [*columns[:-4], *derived], strings)]


def user_writer(buffer: recording.TypeBuffer) -> UserEventWriter:
    """The stream of one user-defined event type: its fields after ticks, then correlation."""
    fields = (
        Field("ticks", "i64"),
        *(Field(name, kind) for name, kind in buffer.fields),
        *(Field(name, kind) for name, kind in recording.CORRELATION_FIELDS),
    )
    declared = EventType(buffer.type_id, buffer.name, fields)
    return UserEventWriter(
        ("events", buffer.name),
        (buffer.name,),
        {"event_type": buffer.name},
        recorded=1 + len(buffer.fields),
        declared=(declared,),
    )


def log_writer(properties: dict[str, str]) -> LogWriter:
    return LogWriter(("log",), ("log_entry",), properties, recorded=5)


def metrics_writer(properties: dict[str, str]) -> StreamWriter:
    return StreamWriter(("metrics",), ("measure",), properties)


def async_writer(properties: dict[str, str]) -> AsyncSpanWriter:
    return AsyncSpanWriter(("async",), ("async_span_begin", "async_span_end"), properties)


def thread_writer(properties: dict[str, str]) -> ThreadSpanWriter:
    return ThreadSpanWriter(("cpu",), ("thread_span_begin", "thread_span_end"), properties)
