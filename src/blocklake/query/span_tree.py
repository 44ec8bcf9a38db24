"""The merged call tree (the ``span_tree`` view, ``schemas/views.toml``) as people read it: a
nested tree per process and kind, or folded stacks for flame graph tools.

The view gives one row per path of span names (``a;b;c``) with its span count, total and self
time in nanoseconds. ``nest`` turns those rows into trees in one pass (a parent's path is its
child's without the last name, and the view's paths replace ``;`` in names, so the split is
exact); ``folded`` writes the format flamegraph.pl and speedscope read: one line per path,
``frame;frame;frame value``, the value an integer (here self nanoseconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

COLUMNS = (
    "process_id",
    "kind",
    "path",
    "depth",
    "name",
    "count",
    "unended",
    "total_ns",
    "self_ns",
)
"""The columns ``tree_sql`` selects, in order."""
ASYNC_ROOT = "[async]"
"""The frame above async spans in folded stacks, so that they stand apart from thread spans."""


def tree_sql(process_prefix: str | None = None) -> str:
    """The query of the ``span_tree`` view's rows (``COLUMNS``), parents before children;
    ``process_prefix``: only processes whose id starts with it."""
    where = ""
    if process_prefix:
        where = " WHERE starts_with(process_id, '" + process_prefix.replace("'", "''") + "')"
    return f"SELECT {', '.join(COLUMNS)} FROM span_tree{where} ORDER BY process_id, kind, path"


@dataclass
class Node:
    name: str
    count: int = 0
    unended: int = 0
    total_ns: int = 0
    self_ns: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def ordered(self) -> list[Node]:
        """Children, longest total first (then by name)."""
        return sorted(self.children.values(), key=lambda n: (-n.total_ns, n.name))


def nest(rows: Iterable[Sequence]) -> dict[tuple[str, str], Node]:
    """The view's rows (``COLUMNS`` order) as one tree per (process id, kind): a root node
    named after the process whose children are the root spans. A row whose parent path has no
    row of its own (not possible from the view) hangs from the root. Linear in the rows."""
    trees: dict[tuple[str, str], Node] = {}
    nodes: dict[tuple[str, str, str], Node] = {}
    for process_id, kind, path, _depth, name, count, unended, total_ns, self_ns in sorted(
        rows, key=lambda row: (row[0], row[1], row[3])
    ):
        root = trees.setdefault((process_id, kind), Node(process_id))
        parent_path = path.rpartition(";")[0]
        parent = nodes.get((process_id, kind, parent_path), root) if parent_path else root
        node = Node(name, count, unended, total_ns, self_ns)
        parent.children[path] = node
        nodes[(process_id, kind, path)] = node
        root.count += count if parent is root else 0
        root.total_ns += total_ns if parent is root else 0
    return trees


def folded(rows: Iterable[Sequence]) -> list[str]:
    """Folded stacks: ``path self_ns`` per path, summed over processes, async paths under
    ``ASYNC_ROOT``; paths whose self time is not positive (async children overlapping their
    parent) are left out, as the format has no negative values. Sorted by path."""
    values: dict[str, int] = {}
    for _process_id, kind, path, _depth, _name, _count, _open, _total, self_ns in rows:
        stack = f"{ASYNC_ROOT};{path}" if kind == "async" else path
        stack = stack.replace("\r", " ").replace("\n", " ")  # one line per stack
        values[stack] = values.get(stack, 0) + int(self_ns)
    return [f"{stack} {value}" for stack, value in sorted(values.items()) if value > 0]


def duration(nanoseconds: int) -> str:
    """Nanoseconds in the unit that reads best: ``812 ns``, ``3.250 µs``, ``12.000 ms``,
    ``1.500 s``."""
    size = abs(nanoseconds)
    if size >= 10**9:
        return f"{nanoseconds / 1e9:,.3f} s"
    if size >= 10**6:
        return f"{nanoseconds / 1e6:,.3f} ms"
    if size >= 10**3:
        return f"{nanoseconds / 1e3:,.3f} µs"
    return f"{nanoseconds} ns"
