"""What ``sdk.attach`` of a large file costs the application, against copying the same file on
the same disk (the floor of anything that reads it), same run: the caller's wait, the time
until the server has it stored (``flush``), and the SDK process's memory growth (peak RSS), with
``blocklake serve`` in another process so that the SDK's process measures only itself.

    .venv/bin/python bench/attachments.py [--mib 256]

Targets: ``attach`` returns within 5 ms whatever the size (it never touches the network); the
upload (hash, declare, stream) takes at most 20 times a local file copy (it reads the file
twice and hashes it, the server hashes and writes it again); the SDK process grows by at most
32 MiB however large the file (it is streamed in 1 MiB chunks, never held).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts src/ on the path)
from _common import Verdicts, machine
from _sdk_server import API_KEY, real_server

from blocklake import sdk


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256, help="size of the file attached")
    parser.add_argument("--quick", action="store_true", help="a 32 MiB file (CI)")
    args = parser.parse_args()
    if args.quick:
        args.mib = 32
    print(machine())
    with tempfile.TemporaryDirectory() as folder, real_server() as url:
        video = Path(folder) / "video.mp4"
        with video.open("wb") as file:
            for _ in range(args.mib):
                file.write(os.urandom(1024 * 1024))
        started = time.perf_counter()
        shutil.copyfile(video, Path(folder) / "copy.mp4")
        copy_s = time.perf_counter() - started
        os.unlink(Path(folder) / "copy.mp4")

        sdk.init(url, API_KEY)
        sdk.info("warm up")
        sdk.flush()
        before = _peak_rss_mib()
        started = time.perf_counter()
        sdk.attach("video.mp4", video)
        attach_ms = (time.perf_counter() - started) * 1000
        delivered = sdk.flush(timeout=600)
        upload_s = time.perf_counter() - started
        grown = _peak_rss_mib() - before
        counts = sdk.stats()["attachments"]
        sdk.shutdown()
    mib = args.mib
    print(f"file of {mib} MiB: copy {copy_s:.2f} s ({mib / copy_s:.0f} MiB/s)")
    print(f"sdk.attach returned in {attach_ms:.2f} ms")
    print(
        f"uploaded and recorded in {upload_s:.2f} s ({mib / upload_s:.0f} MiB/s), "
        f"{upload_s / copy_s:.1f}x the copy; SDK process peak RSS +{grown:.1f} MiB"
    )
    print(f"stats: {counts}")
    verdicts = Verdicts()
    verdicts.check("attach() wait", f"{attach_ms:.2f} ms", "<= 5 ms", attach_ms <= 5)
    verdicts.check(
        "upload / copy time", f"{upload_s / copy_s:.1f}x", "<= 20x", upload_s / copy_s <= 20
    )
    verdicts.check("SDK memory growth", f"{grown:.1f} MiB", "<= 32 MiB", grown <= 32)
    ok = delivered and counts["uploaded"] == 1
    verdicts.check("uploaded and recorded", str(ok), "True", ok)
    verdicts.print()
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
