"""Turns of the scheduled committer: one run commits at a time, without reserved concurrency.

The lake's tables have a single writer (two committers batching the same staged fragments would
append them twice). Reserving a concurrency of 1 would say so to Lambda, but a reservation fails
to deploy in an account with a small concurrency quota (``docs/deploy.md``), so each scheduled
run takes a turn in the bucket instead, with nothing but conditional puts:

- the run scheduled for minute ``m`` creates ``lake/committer/<m>`` (``put_if_absent``): a second
  invocation for the same minute (an EventBridge retry) finds it and does nothing;
- it then looks at the latest earlier turn: while that one has no ``.done`` marker and started
  less than ``stale_after_ns`` ago (the function's timeout: past it, the run is dead), it is still
  committing, so this run removes its turn and leaves (the next run then still waits for it);
- a run marks ``<m>.done`` when it ends; turns older than an hour are removed.
"""

from __future__ import annotations

from blocklake.stores.blobs import BlobStore

PREFIX = "lake/committer/"
MINUTE_NS = 60 * 1_000_000_000
KEEP_NS = 60 * MINUTE_NS


def _minute(key: str) -> int:
    return int(key.removeprefix(PREFIX).removesuffix(".done"))


class Turns:
    def __init__(self, blobs: BlobStore, stale_after_ns: int) -> None:
        self.blobs = blobs
        self.stale_after_ns = stale_after_ns

    def take(self, now_ns: int) -> int | None:
        """The turn (a minute number) of a run starting at ``now_ns``, or None when another
        run holds the lake: a run for the same minute, or an earlier one still going."""
        minute = now_ns // MINUTE_NS
        if not self.blobs.put_if_absent(f"{PREFIX}{minute:012d}", str(now_ns).encode()):
            return None
        keys = set(self.blobs.list(PREFIX))
        earlier = [_minute(k) for k in keys if not k.endswith(".done") and _minute(k) < minute]
        if earlier:
            last = max(earlier)
            running = f"{PREFIX}{last:012d}.done" not in keys
            if running and now_ns - last * MINUTE_NS < self.stale_after_ns:
                # gone again, so that the next run still waits for the one committing
                self.blobs.delete([f"{PREFIX}{minute:012d}"])
                return None
        self.blobs.delete(sorted(k for k in keys if _minute(k) < minute - KEEP_NS // MINUTE_NS))
        return minute

    def done(self, minute: int) -> None:
        """Marks the run of ``minute`` finished: the next one may commit."""
        self.blobs.put(f"{PREFIX}{minute:012d}.done", b"")
