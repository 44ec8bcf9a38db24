"""Issue 13, item 6: spans into trees. Begins and ends paired across blocks (the SDK's span
writers replay open begins), what pairs with nothing reported in ``unmatched_spans`` and
``open_spans``, and the merged call tree (``span_tree``) with exact counts, totals and self
times, on DuckDB, through the Athena transpile fake and from the CLI (``--tree``, ``--folded``).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyathena
import pytest
from typer.testing import CliRunner

from blocklake.cli import app
from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.etl import rows
from blocklake.etl.unmatched import unmatched_spans
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types, layout_to_json
from blocklake.query import span_tree
from blocklake.query.athena_engine import AthenaEngine
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryRequest
from blocklake.sdk.recording import SpanScope
from blocklake.sdk.streams import async_writer, thread_writer
from blocklake.server.events import LambdaContext
from blocklake.server.http import LocalServer
from blocklake.stores.models import ProcessInfo
from tests.helpers import KEYS, http_event, lake_for, process_document, stored_rows
from tests.query.conftest import HOUR, T0
from tests.query.fake_athena import FakeAthena, FakeSession

runner = CliRunner()
RANGE = ["--begin", "2026-11-20T08:00:00Z", "--end", "2026-11-20T09:00:00Z"]
US = 1000  # ticks of a 1 GHz clock per microsecond: the lake's timestamps are microseconds


def _scopes(*names: str) -> list[SpanScope]:
    return [SpanScope(name, "shop", "span_tree.py", line) for line, name in enumerate(names)]


MAIN, HANDLE, QUERY = _scopes("main", "handle", "query;sql")
REQUEST, DB, CACHE = _scopes("request", "db", "cache")
EARLY = 5 * 60 * 10**9  # 08:05, in ticks of the 1 GHz clock started at 08:00


def _thread_blocks() -> list[bytes]:
    """main (never ends) > handle > query;sql, then handle again across the block boundary,
    and a query;sql directly under main."""
    writer = thread_writer({})
    t = EARLY
    first = writer.encode(
        [
            (MAIN.id, t + 1 * US),
            (HANDLE.id, t + 2 * US),
            (QUERY.id, t + 3 * US),
            (QUERY.end_id, t + 5 * US),
            (HANDLE.end_id, t + 7 * US),
            (HANDLE.id, t + 8 * US),
        ]
    )
    second = writer.encode(
        [(HANDLE.end_id, t + 12 * US), (QUERY.id, t + 13 * US), (QUERY.end_id, t + 14 * US)]
    )
    return [writer, first.data, second.data]


def _async_blocks() -> list:
    """Two requests with explicit parents; the first one's db and cache overlap."""
    writer = async_writer({})
    t = EARLY
    # begins (scope, ticks, span id, parent, trace, remote parent, attributes); ends (-scope,
    # ticks, span id), as the record path makes them
    first = writer.encode(
        [
            (REQUEST.id, t + 1 * US, 1, 0, 1, 0, None),
            (DB.id, t + 2 * US, 2, 1, 1, 0, None),
            (CACHE.id, t + 3 * US, 3, 1, 1, 0, None),
            (-CACHE.id, t + 5 * US, 3),
            (-DB.id, t + 8 * US, 2),
            (-REQUEST.id, t + 10 * US, 1),
            (REQUEST.id, t + 20 * US, 4, 0, 4, 0, None),
        ]
    )
    second = writer.encode(
        [
            (DB.id, t + 21 * US, 5, 4, 4, 0, None),
            (-DB.id, t + 24 * US, 5),
            (-REQUEST.id, t + 30 * US, 4),
        ]
    )
    return [writer, first.data, second.data]


def _revision_1_registration(writer, process_id: str) -> dict:
    """The stream registration of a writer of revision 1 span blocks (made by hand here)."""
    registration = writer.registration(process_id)
    types = event_types(1)
    registration["layout"] = layout_to_json([types["thread_span_begin"], types["thread_span_end"]])
    return registration


def _lost_end_blocks(stream_id: str) -> list[bytes]:
    """A writer that is not ours: 'lost' is open at the end of block 0, then neither replayed
    nor ended in block 1 (which ingest accepts: its own ends have their begins)."""
    types = event_types(1)  # blocks made by hand, as revision 1 writers made them
    blocks = []
    for sequence, (span_id, name, ticks, ended) in enumerate(
        [(1, "lost", EARLY + 40 * US, False), (2, "after", EARLY + 50 * US, True)]
    ):
        strings = StringTable()
        begin = [[ticks], [span_id], [0], [0], [name], ["shop"], ["x.py"], [1]]
        sections = [encode_section(types["thread_span_begin"], begin, strings)]
        if ended:
            end = [[ticks + 2 * US], [span_id]]
            sections.append(encode_section(types["thread_span_end"], end, strings))
        blocks.append(
            encode_block(
                stream_id=uuid.UUID(stream_id),
                sequence=sequence,
                begin_ticks=ticks,
                end_ticks=ticks + 2 * US,
                object_count=1 + ended,
                sections=sections,
                strings=strings,
            )
        )
    return blocks


class Lake:
    def __init__(self, root: Path, server: LocalServer, process_id: str) -> None:
        self.root = root
        self.server = server
        self.process_id = process_id
        self.duckdb = DuckDbEngine(server.lake.blobs, server.lake.lake)

    def request(self, sql: str) -> QueryRequest:
        return QueryRequest("acme", sql, T0, T0 + HOUR, 10_000)

    def rows(self, sql: str, engine: str = "duckdb") -> list[dict]:
        if engine == "duckdb":
            return self.duckdb.run(self.request(sql)).table.to_pylist()
        fake = FakeAthena(self.root, "db", "wg", 10 * 1024**3)
        athena = AthenaEngine(
            lambda: pyathena.connect(
                session=FakeSession(fake),
                region_name="eu-west-1",
                work_group="wg",
                schema_name="db",
                poll_interval=0.01,
            ),
            "db",
            "wg",
            QueryLimits(timeout_s=20.0),
        )
        return athena.run(self.request(sql)).table.to_pylist()

    def stored(self, table: str) -> list[dict]:
        """The table's rows as its Parquet files hold them."""
        return stored_rows(self.server.lake.blobs, table).to_pylist()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = tmp_path_factory.mktemp("span_tree") / "lake"
    settings = Settings(data_dir=root, api_keys=dict(KEYS))
    context = LambdaContext("blocklake-test")
    with LocalServer(settings, port=0) as server:
        ingest = server.lake.handlers["ingest"]

        def post(path: str, body: bytes | dict) -> None:
            response = ingest(http_event(path, body), context)
            assert response["statusCode"] == 201, response["body"]

        process = process_document(start_time_ns=T0, start_ticks=0)
        post("/v1/processes", process)
        thread, *thread_data = _thread_blocks()
        spans, *async_data = _async_blocks()
        for writer in (thread, spans):
            post("/v1/streams", writer.registration(process["process_id"]))
        other = thread_writer({})  # a stream for the blocks of a writer that is not ours
        post("/v1/streams", _revision_1_registration(other, process["process_id"]))
        for data in [*thread_data, *async_data, *_lost_end_blocks(str(other.stream_id))]:
            post("/v1/blocks", data)
        server.lake.wait_converted()
        yield Lake(root, server, process["process_id"])


def test_spans_pair_across_blocks_and_every_unpaired_event_is_stored(lake: Lake) -> None:
    thread = lake.stored("thread_spans")
    assert sorted((r["name"], r["duration_ns"]) for r in thread) == [
        ("after", 2000), ("handle", 4000), ("handle", 5000), ("query;sql", 1000),
        ("query;sql", 2000),
    ]  # fmt: skip
    assert sorted((r["name"], r["duration_ns"]) for r in lake.stored("async_spans")) == [
        ("cache", 2000), ("db", 3000), ("db", 6000), ("request", 9000), ("request", 10000),
    ]  # fmt: skip
    unmatched = sorted(
        (r["kind"], r["unmatched"], r["name"], r["sequence"], r["open_ns"])
        for r in lake.stored("unmatched_spans")
    )
    # Open at each block's end: main (and handle) after the thread's first block, main after
    # its second; request 4 after the async stream's first; 'lost' after the other's first.
    assert unmatched == [
        ("async", "begin", "request", 0, 0),
        ("thread", "begin", "handle", 0, 0),
        ("thread", "begin", "lost", 0, 2000),
        ("thread", "begin", "main", 0, 7000),
        ("thread", "begin", "main", 1, 13_000),
    ]


@pytest.mark.parametrize("engine", ["duckdb", "athena"])
def test_open_spans_are_those_open_at_the_end_or_never_ended(lake: Lake, engine: str) -> None:
    got = lake.rows(
        "SELECT name, kind, state, parent_span_id, depth FROM open_spans ORDER BY name", engine
    )
    assert got == [
        {"name": "lost", "kind": "thread", "state": "unfinished", "parent_span_id": 0, "depth": 0},
        {"name": "main", "kind": "thread", "state": "open", "parent_span_id": 0, "depth": 0},
    ]


EXPECTED_TREE = [
    # kind, path, depth, count, unended, total ns, self ns
    ("async", "request", 0, 2, 0, 19_000, 8_000),  # 19 us less db (9) and cache (2)
    ("async", "request;cache", 1, 1, 0, 2_000, 2_000),
    ("async", "request;db", 1, 2, 0, 9_000, 9_000),
    ("thread", "after", 0, 1, 0, 2_000, 2_000),
    ("thread", "lost", 0, 1, 1, 2_000, 2_000),  # open until its block's end, then nothing
    ("thread", "main", 0, 1, 1, 13_000, 3_000),  # until the latest block's end
    ("thread", "main;handle", 1, 2, 0, 9_000, 7_000),
    ("thread", "main;handle;query:sql", 2, 1, 0, 2_000, 2_000),
    ("thread", "main;query:sql", 1, 1, 0, 1_000, 1_000),
]


@pytest.mark.parametrize("engine", ["duckdb", "athena"])
def test_the_call_tree_is_merged_per_process_with_exact_times(lake: Lake, engine: str) -> None:
    got = lake.rows("SELECT * FROM span_tree ORDER BY kind, path", engine)
    assert {row["process_id"] for row in got} == {lake.process_id}
    columns = ("kind", "path", "depth", "count", "unended", "total_ns", "self_ns")
    assert [tuple(row[c] for c in columns) for row in got] == EXPECTED_TREE
    assert [row["name"] for row in got][-2:] == ["query;sql", "query;sql"]  # names as recorded


def test_the_call_tree_of_a_range_without_spans_is_empty(lake: Lake) -> None:
    request = QueryRequest("acme", "SELECT count(*) AS n FROM span_tree", T0 - HOUR, T0, 10)
    assert lake.duckdb.run(request).table.to_pylist() == [{"n": 0}]


def test_a_query_may_not_take_a_derived_view_s_name(lake: Lake) -> None:
    with pytest.raises(ClientError) as refused:
        lake.duckdb.run(lake.request("WITH span_tree AS (SELECT 1 AS n) SELECT n FROM span_tree"))
    assert refused.value.code == "not_allowed" and "'span_tree'" in refused.value.message


def test_a_derived_view_counts_the_files_of_the_views_it_reads(lake: Lake) -> None:
    scan = lake.duckdb.scan(lake.request("SELECT count(*) FROM span_tree"))
    assert sorted(scan.tables) == ["async_spans", "thread_spans", "unmatched_spans"]
    # every data file of those tables (all in the range), as the Iceberg table lists them
    tables = {t: lake.server.lake.lake.load(t, "acme") for t in sorted(scan.tables)}
    files = [tables[t].inspect.files().num_rows for t in sorted(scan.tables)]
    assert [scan.tables[t].files for t in sorted(scan.tables)] == files
    assert all(files)


def _process() -> ProcessInfo:
    return ProcessInfo("p", "x", "u", "c", T0, 0, 1_000_000_000)


def test_ends_without_begins_are_reported_not_dropped() -> None:
    """Ingest refuses such a block today; one stored before that check, or decoded with a
    layout that lost its begin type, would have its ends dropped by the pairing."""
    ends = pa.table(
        {"ticks": pa.array([5, 9], pa.int64()), "span_id": pa.array([7, 8], pa.uint64())}
    )
    sections = {"thread_span_end": ends}
    assert rows.spans("thread_spans", None, ends, _process(), "s", "b") is None
    table = unmatched_spans(sections, _process(), "s", "b", 3, (1, 10))
    assert table.schema.names[-4:] == ["end", "block_begin", "block_end", "open_ns"]
    got = [
        (r["kind"], r["unmatched"], r["span_id"], r["name"], r["begin"], r["sequence"])
        for r in table.to_pylist()
    ]
    assert got == [("thread", "end", 7, None, None, 3), ("thread", "end", 8, None, None, 3)]
    assert table["end"].cast(pa.int64()).to_pylist() == [T0 // 1000, T0 // 1000]


def test_a_block_whose_spans_all_pair_reports_nothing() -> None:
    begins = pa.table(
        {
            "ticks": pa.array([1], pa.int64()),
            "span_id": pa.array([1], pa.uint64()),
            "parent_span_id": pa.array([0], pa.uint64()),
            "depth": pa.array([0], pa.uint32()),
            "name": ["a"],
            "target": ["t"],
            "file": ["f"],
            "line": pa.array([1], pa.uint32()),
        }
    )
    ends = pa.table({"ticks": pa.array([2], pa.int64()), "span_id": pa.array([1], pa.uint64())})
    sections = {"async_span_begin": begins, "async_span_end": ends}
    assert unmatched_spans(sections, _process(), "s", "b", 0, (1, 2)) is None
    opened = unmatched_spans({"async_span_begin": begins}, _process(), "s", "b", 0, (1, 4))
    assert [(r["kind"], r["name"], r["open_ns"]) for r in opened.to_pylist()] == [("async", "a", 3)]


def test_folded_stacks_sum_self_time_per_path() -> None:
    rows_ = [
        ("p1", "thread", "main", 0, "main", 1, 0, 10, 4),
        ("p1", "thread", "main;a b", 1, "a b", 2, 0, 6, 6),
        ("p2", "thread", "main", 0, "main", 1, 0, 5, 5),
        ("p1", "async", "req", 0, "req", 1, 0, 3, -2),  # overlapping children: left out
        ("p1", "async", "req;db", 1, "db", 2, 0, 5, 5),
    ]
    assert span_tree.folded(rows_) == ["[async];req;db 5", "main 9", "main;a b 6"]
    trees = span_tree.nest(rows_)
    main = trees[("p1", "thread")].children["main"]
    assert (main.count, main.total_ns, [c.name for c in main.ordered()]) == (1, 10, ["a b"])
    assert [span_tree.duration(n) for n in (812, 3250, 12 * 10**6, -1_500_000_000)] == [
        "812 ns", "3.250 µs", "12.000 ms", "-1.500 s",
    ]  # fmt: skip


@pytest.fixture
def served(lake: Lake) -> list[str]:
    return ["--endpoint", lake.server.url, "--api-key", "key-acme", *RANGE]


def test_cli_prints_the_tree(lake: Lake, served: list[str]) -> None:
    result = runner.invoke(app, ["spans", "--tree", *served], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(lake.process_id) and "async spans" in lines[0]
    text = "\n".join(line.strip(" │├└─") for line in lines)
    assert "main  1x, 1 unended  13.000 µs (self 3.000 µs)" in text
    assert "handle  2x  9.000 µs (self 7.000 µs)" in text
    assert "query;sql  1x  2.000 µs (self 2.000 µs)" in text
    assert "lost  1x, 1 unended  2.000 µs" in text
    # children under their parent, longest first
    order = [line.strip(" │├└─").split("  ")[0] for line in lines]
    assert order.index("main") < order.index("handle") < order.index("query;sql")


def test_cli_writes_folded_stacks(lake: Lake, served: list[str], tmp_path: Path) -> None:
    output = tmp_path / "stacks.folded"
    result = runner.invoke(app, ["spans", "--folded", *served, "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text().splitlines() == [
        "[async];request 8000",
        "[async];request;cache 2000",
        "[async];request;db 9000",
        "after 2000",
        "lost 2000",
        "main 3000",
        "main;handle 7000",
        "main;handle;query:sql 2000",
        "main;query:sql 1000",
    ]


def test_cli_tree_as_json_gives_the_view_s_rows(lake: Lake, served: list[str]) -> None:
    result = runner.invoke(app, ["spans", "--tree", "--format", "json", *served])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [c["name"] for c in document["columns"]] == list(span_tree.COLUMNS)
    assert len(document["rows"]) == len(EXPECTED_TREE)


def test_cli_tree_refuses_a_name_filter(served: list[str]) -> None:
    result = runner.invoke(app, ["spans", "--tree", "--name", "main", *served])
    assert result.exit_code == 2 and "--name" in result.output


def test_a_cycle_of_reused_span_ids_ends_at_the_level_bound(settings: Settings) -> None:
    """A writer that is not ours reuses span id 1 in a later block, under span 2: the parents
    then loop (1 > 2 > 1' > 2 ...). The recursion stops at 256 levels instead of running on."""
    with LocalServer(settings, port=0) as server:
        ingest = server.lake.handlers["ingest"]
        context = LambdaContext("blocklake-test")

        def post(path: str, body: bytes | dict) -> None:
            response = ingest(http_event(path, body), context)
            assert response["statusCode"] == 201, response["body"]

        process = process_document(start_time_ns=T0, start_ticks=0)
        post("/v1/processes", process)
        writer = thread_writer({})
        post("/v1/streams", _revision_1_registration(writer, process["process_id"]))
        types = event_types(1)  # blocks made by hand, as revision 1 writers made them
        for sequence, spans in enumerate([[(1, 0, "root"), (2, 1, "x")], [(1, 2, "y")]]):
            strings = StringTable()
            ticks = [EARLY + (sequence * 10 + i) * US for i in range(len(spans))]
            ids = [span_id for span_id, _, _ in spans]
            begin = [
                ticks, ids, [parent for _, parent, _ in spans], [0] * len(spans),
                [name for _, _, name in spans], ["t"] * len(spans), ["f"] * len(spans),
                [1] * len(spans),
            ]  # fmt: skip
            end = [[tick + US for tick in ticks], ids]
            post(
                "/v1/blocks",
                encode_block(
                    stream_id=writer.stream_id,
                    sequence=sequence,
                    begin_ticks=ticks[0],
                    end_ticks=ticks[-1] + US,
                    object_count=2 * len(spans),
                    sections=[
                        encode_section(types["thread_span_begin"], begin, strings),
                        encode_section(types["thread_span_end"], end, strings),
                    ],
                    strings=strings,
                ),
            )
        server.lake.wait_converted()
        engine = DuckDbEngine(server.lake.blobs, server.lake.lake)
        request = QueryRequest(
            "acme",
            "SELECT max(depth) AS deepest, count(*) AS paths FROM span_tree",
            T0,
            T0 + HOUR,
            10,
        )
        assert engine.run(request).table.to_pylist() == [{"deepest": 255, "paths": 256}]


def test_a_stored_block_with_ends_without_begins_converts_them_to_unmatched_rows(
    settings: Settings,
) -> None:
    """Ingest refuses such a block; one stored before that check converts, and its ends were
    dropped by the pairing without a trace. Simulated: the accepted block's raw object replaced
    by one whose ends (ids 7 and 8) have no begin."""
    from blocklake.etl.convert import BlockConverter
    from tests.handlers.test_ingest_refusals import Ingest

    ingest = Ingest(settings, LambdaContext("blocklake-test"))
    writer = thread_writer({})
    process = process_document(start_time_ns=T0, start_ticks=0)
    assert ingest.call("/v1/processes", process)[0] == 201
    assert ingest.call("/v1/streams", writer.registration(process["process_id"]))[0] == 201
    (main,) = _scopes("main")
    accepted = writer.encode([(main.id, EARLY), (main.end_id, EARLY + US)]).data
    status, answer = ingest.call("/v1/blocks", accepted)
    assert status == 201, answer
    types = event_types()  # the stream's layout, as the writer registered it
    strings = StringTable()
    ends = [[EARLY + 2 * US, EARLY + 3 * US], [7, 8], [0, 0], ["", ""], ["", ""]]
    legacy = encode_block(
        stream_id=writer.stream_id,
        block_id=uuid.UUID(answer["block_id"]),
        sequence=0,
        begin_ticks=EARLY,
        end_ticks=EARLY + 3 * US,
        object_count=0,
        sections=[encode_section(types["thread_span_end"], ends, strings)],
        strings=strings,
    )
    (key,) = ingest.blobs.list("raw/")
    ingest.blobs.put(key, legacy)
    converter = BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs))
    conversion = converter.convert_key(key)
    assert conversion.rows == {"unmatched_spans": 2}
    table = stored_rows(ingest.blobs, "unmatched_spans")
    assert [(r["unmatched"], r["span_id"], r["name"], r["begin"]) for r in table.to_pylist()] == [
        ("end", 7, None, None),
        ("end", 8, None, None),
    ]
    micros = [(T0 + EARLY + 2 * US) // 1000, (T0 + EARLY + 3 * US) // 1000]
    assert table["end"].cast(pa.int64()).to_pylist() == micros
    assert stored_rows(ingest.blobs, "thread_spans").num_rows == 0


def test_each_derived_view_declares_exactly_the_views_its_sql_reads() -> None:
    """A query naming a derived view is counted (scan limits, dry run) by ``reads``."""
    from blocklake.query.duckdb_sql import tables_named
    from blocklake.query.views import derived_views, views

    for view in derived_views().values():
        assert tables_named(view.sql) & set(views()) == set(view.reads), view.name
