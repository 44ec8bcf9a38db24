"""Input 7: events recorded in ``multiprocessing`` children arrive, for every start method.

Children end through ``os._exit``, which skips ``atexit``; ``Pool.__exit__`` terminates its
workers with SIGTERM; spawn and forkserver children start a fresh interpreter that never ran
``sdk.init``. Each case runs in a fresh interpreter, with the fake server in the parent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

SCRIPT = """
import json, multiprocessing, sys
from blocklake import sdk


def one_process(method):
    sdk.info(f"process {method}")
    with sdk.span("child span"):
        pass


def pool_task(i):
    sdk.info(f"pool {i}")
    return i


if __name__ == "__main__":
    from sdk_fake_server import FakeServer  # the parent only: children need no pyarrow

    method = sys.argv[1]
    server = FakeServer().start()
    parent_id = sdk.init(server.url, "key", flush_interval=60)
    context = multiprocessing.get_context(method)
    child = context.Process(target=one_process, args=(method,))
    child.start()
    child.join()
    with context.Pool(2) as pool:  # __exit__ terminates the workers (SIGTERM)
        assert pool.map(pool_task, range(6), chunksize=1) == list(range(6))
    closed = context.Pool(2)  # close + join: workers leave their loop and end
    assert closed.map(pool_task, range(6, 10), chunksize=1) == list(range(6, 10))
    closed.close()
    closed.join()
    sdk.info("parent")
    assert sdk.flush(timeout=20)
    sdk.shutdown(timeout=10)
    rows = [
        (stream["process_id"], row["message"])
        for stream, block in server.decoded()
        if "log_entry" in block.sections
        for row in block.sections["log_entry"].to_pylist()
    ]
    print(json.dumps({
        "parent": parent_id,
        "exitcode": child.exitcode,
        "processes": server.processes(),
        "logs": rows,
        "spans": len(server.rows("thread_span_begin")),
    }))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_children_deliver(tmp_path: Path, method: str) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), method],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{HERE}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["exitcode"] == 0
    parent = report["parent"]
    processes = {p["process_id"]: p for p in report["processes"]}
    assert processes[parent]["parent_process_id"] is None
    children = set(processes) - {parent}
    assert children and all(processes[c]["parent_process_id"] == parent for c in children)
    messages = sorted(message for _, message in report["logs"])
    assert messages == sorted([f"process {method}", "parent", *(f"pool {i}" for i in range(10))]), (
        result.stderr
    )
    assert {process for process, _ in report["logs"]} <= set(processes)
    assert report["spans"] == 1
