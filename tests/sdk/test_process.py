"""Whole-process behaviour, each in a fresh interpreter: fork safety, and what importing the SDK
pulls in."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'src'}:{HERE}", "PATH": "/usr/bin:/bin"},
    )


FORK_SCRIPT = """
    import json, os, sys, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
    from sdk_fake_server import FakeServer
    from blocklake import sdk

    server = FakeServer().start()
    parent_id = sdk.init(server.url, "key", flush_interval=60)
    sdk.info("parent before fork")
    with sdk.span("parent span"):
        pass
    child = os.fork()
    if child == 0:
        sdk.info("child after fork")
        with sdk.span("child span"):
            pass
        ok = sdk.flush(timeout=10)
        child_id = sdk.process_id()
        sdk.shutdown(timeout=10)
        os._exit(0 if ok and child_id != parent_id else 3)
    _, status = os.waitpid(child, 0)
    sdk.info("parent after fork")
    assert sdk.flush(timeout=10)
    sdk.shutdown(timeout=10)
    print(json.dumps({
        "status": status,
        "parent_id": parent_id,
        "processes": server.processes(),
        "streams": server.streams(),
        "logs": [(s["process_id"], r["message"]) for s, b in server.decoded()
                 for r in (b.sections["log_entry"].to_pylist()
                           if "log_entry" in b.sections else [])],
        "spans": [(s["process_id"], r["name"]) for s, b in server.decoded()
                  for r in (b.sections["thread_span_begin"].to_pylist()
                            if "thread_span_begin" in b.sections else [])],
    }))
"""


def test_forked_child_records_under_a_new_process_and_sends_nothing_twice() -> None:
    result = run_python(FORK_SCRIPT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 0, "the child could not flush under its own process id"
    parent_id = report["parent_id"]
    processes = {p["process_id"]: p for p in report["processes"]}
    assert len(report["processes"]) == 2 == len(processes)
    (child_id,) = set(processes) - {parent_id}
    assert processes[child_id]["parent_process_id"] == parent_id
    assert processes[parent_id]["parent_process_id"] is None
    assert processes[child_id]["properties"]["pid"] != processes[parent_id]["properties"]["pid"]
    # every stream belongs to one process, and the child's are its own
    by_process: dict[str, set[str]] = {}
    for stream_id, stream in report["streams"].items():
        by_process.setdefault(stream["process_id"], set()).add(stream_id)
    assert by_process[child_id].isdisjoint(by_process[parent_id])
    logs = sorted(map(tuple, report["logs"]))
    assert logs == sorted(
        [
            (parent_id, "parent before fork"),
            (parent_id, "parent after fork"),
            (child_id, "child after fork"),
        ]
    )
    assert sorted(map(tuple, report["spans"])) == sorted(
        [(parent_id, "parent span"), (child_id, "child span")]
    )


def test_importing_the_sdk_pulls_in_no_heavy_dependency() -> None:
    result = run_python(
        """
        import sys
        import blocklake.sdk
        from blocklake import sdk
        sdk.info("x"); sdk.metric("m", 1.0)
        with sdk.span("s"):
            pass
        heavy = ("pyarrow", "duckdb", "boto3", "botocore", "numpy", "aws_lambda_powertools",
                 "pandas", "psycopg")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        print("lz4" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == ["[]", "True"]
