"""One odd value in the process's own settings never costs its registration, hence every event:
``init`` coerces to text, cuts to the server's limits with a marker, and never raises."""

from __future__ import annotations

import logging
import pathlib
import threading

import pytest

from blocklake import sdk
from blocklake.ingest import validate
from blocklake.sdk import registration
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

BAD = {
    "int_values": dict(properties={"n": 1, 2: "k", "none": None, "f": 1.5}),
    "bytes_value": dict(properties={"b": b"\xff"}),
    "list_props": dict(properties=[("a", "b")]),
    "str_props": dict(properties="a=b"),
    "exe_bytes": dict(exe=b"/opt/caf\xe9.py"),
    "exe_path": dict(exe=pathlib.Path("/opt/app.py")),
    "exe_int": dict(exe=5),
    "huge_prop": dict(properties={"big": "x" * (5 << 20)}),
    "many_props": dict(properties={f"k{i}": "v" for i in range(100_000)}),
    "long_key": dict(properties={"k" * 1000: "v", "nul\0": "a\0b"}),
    "bad_level": dict(level="LOUD"),
    "bad_option": dict(flush_interval="soon", max_memory=None, timeout=-1),
}


def test_the_sdk_caps_are_the_servers() -> None:
    assert registration.MAX_TEXT_BYTES == validate.MAX_TEXT_BYTES
    assert registration.MAX_NAME_BYTES == validate.MAX_NAME_BYTES
    assert registration.MAX_ENTRIES == validate.MAX_ENTRIES


def test_odd_settings_are_coerced_and_the_process_registers(settings) -> None:
    with LocalServer(settings, port=0) as server:
        for name, options in BAD.items():
            sdk.init(server.url, next(iter(KEYS)), **{"flush_interval": 60, **options})
            sdk.info("hello", target=name)
            assert sdk.flush(timeout=20) is True, (name, sdk.stats())
            assert sdk.stats()["acknowledged"] == 1, name
        sdk.shutdown()


def test_a_thread_named_with_megabytes_of_text_registers_its_stream(settings) -> None:
    with LocalServer(settings, port=0) as server:
        sdk.init(server.url, next(iter(KEYS)), flush_interval=60)

        def work() -> None:
            with sdk.span("in a thread"):
                pass

        thread = threading.Thread(target=work, name="t" * (5 << 20))
        thread.start()
        thread.join()
        assert sdk.flush(timeout=20) is True, sdk.stats()
        assert sdk.stats()["acknowledged"] == 2
        sdk.shutdown()


def test_what_the_coercions_make() -> None:
    props = registration.properties({f"k{i}": "v" for i in range(1000)}, reserved=2)
    assert len(props) == 254
    assert props[registration.CUT_ENTRIES_KEY].startswith("747 properties left out")
    assert registration.properties([("a", "b")]) == {"a": "b"}
    assert registration.properties("a=b") == {"properties": "a=b"}
    assert registration.properties({1: None, "b": b"x"}) == {"1": "", "b": "x"}
    big = registration.text("é" * 5000)
    kept, marker = big.split("...[truncated ")
    assert len(big.encode()) <= validate.MAX_TEXT_BYTES
    assert len(kept.encode()) + int(marker.removesuffix(" bytes]")) == 10_000
    assert registration.text(b"/opt/caf\xe9.py") == "/opt/caf?.py"
    assert registration.text(pathlib.Path("/opt/app.py")) == "/opt/app.py"
    assert registration.text("a\0b") == "a?b"


@pytest.mark.parametrize(
    ("level", "name"),
    [("info", "INFO"), ("warning", "WARN"), (2, "ERROR"), (logging.DEBUG, "DEBUG"), ("x", None)],
)
def test_levels_by_name_number_or_logging(level: object, name: str | None) -> None:
    from blocklake.sdk import recording

    assert recording.level_name(level) == name


def test_log_takes_sdk_and_logging_levels() -> None:
    from blocklake.sdk import recording

    sdk.log(3, "warn")
    sdk.log(logging.WARNING, "logging's warning")
    sdk.log(logging.DEBUG, "below INFO: not recorded")
    sdk.log(5, "below INFO: not recorded")
    assert [(e[1], e[3]) for e in recording.logs] == [(3, "warn"), (3, "logging's warning")]
