"""The stdlib logging bridge: levels, formatting with args, exceptions, extra fields and the
call site as properties, the thread."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from blocklake import sdk
from blocklake.sdk import recording
from blocklake.sdk.logging_handler import level_code


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.sdk.app")
    log.setLevel(1)
    log.propagate = False
    handler = sdk.LoggingHandler()
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    log.propagate = True


@pytest.mark.parametrize(
    "levelno,code",
    [
        (logging.CRITICAL, 1), (logging.CRITICAL + 5, 1), (logging.ERROR, 2), (45, 2),
        (logging.WARNING, 3), (35, 3), (logging.INFO, 4), (25, 4), (logging.DEBUG, 5),
        (15, 5), (5, 6), (1, 6),
    ],
)  # fmt: skip
def test_level_codes(levelno: int, code: int) -> None:
    assert level_code(levelno) == code


def test_records_map_to_log_entries(logger: logging.Logger) -> None:
    recording.configure(max_level=recording.TRACE)
    logger.critical("c")
    logger.error("e")
    logger.warning("disk %s is %d%% full", "/var", 93)
    logger.info("i %(user)s", {"user": "ann"})
    logger.debug("d")
    logger.log(5, "t")
    entries = list(recording.logs)
    assert [e[1] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e[3] for e in entries] == ["c", "e", "disk /var is 93% full", "i ann", "d", "t"]
    assert {e[2] for e in entries} == {"tests.sdk.app"}
    code = {"code.filepath", "code.lineno", "code.function"}
    assert all(set(e[4]) == code for e in entries[:5])
    # level 5 is no logging level: rounded down (TRACE), its number and name kept
    assert entries[5][4] == entries[5][4] | {"logging.levelno": "5", "logging.levelname": "Level 5"}
    assert {e[4]["code.filepath"] for e in entries} == {__file__}
    assert {e[4]["code.function"] for e in entries} == {"test_records_map_to_log_entries"}
    lines = [int(e[4]["code.lineno"]) for e in entries]
    assert lines == list(range(lines[0], lines[0] + 6))
    ticks = [e[0] for e in entries]
    assert ticks == sorted(ticks)


def test_exceptions_land_in_the_exception_property(logger: logging.Logger) -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("division of %s failed", "x")
    ((_ticks, level, target, message, properties, *_correlation),) = list(recording.logs)
    assert (level, target, message) == (2, "tests.sdk.app", "division of x failed")
    assert set(properties) == {"exception", "code.filepath", "code.lineno", "code.function"}
    assert properties["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in properties["exception"]
    assert "1 / 0" in properties["exception"]


def test_max_level_filters_handler_records(logger: logging.Logger) -> None:
    recording.configure(max_level=recording.WARN)
    logger.info("dropped")
    logger.debug("dropped")
    logger.warning("kept")
    assert [e[3] for e in recording.logs] == ["kept"]
    assert recording.logs.dropped == 0


def test_a_bad_record_does_not_raise(logger: logging.Logger, monkeypatch) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger.warning("%d items", "not a number")  # formatting fails inside emit
    assert list(recording.logs) == []
    logger.warning("after")
    assert [e[3] for e in recording.logs] == ["after"]


def test_extra_fields_exception_call_site_and_thread_are_kept(logger: logging.Logger) -> None:
    """Issue 12's input: error("failed", exc_info=True, extra={"order": 7}) keeps the
    traceback, the extra field (as text), file, line, function and the thread."""
    try:
        raise KeyError("cart")
    except KeyError:
        logger.error("failed", exc_info=True, extra={"order": 7, "user": "ann"})
    line = sys._getframe().f_lineno - 1
    ((_ticks, level, target, message, properties, thread, span, _trace, context),) = list(
        recording.logs
    )
    assert (level, target, message) == (2, "tests.sdk.app", "failed")
    assert properties["order"] == "7" and properties["user"] == "ann"
    assert properties["code.filepath"] == __file__
    assert properties["code.lineno"] == str(line)
    assert properties["code.function"] == (
        "test_extra_fields_exception_call_site_and_thread_are_kept"
    )
    assert "KeyError: 'cart'" in properties["exception"]
    assert properties["exception"].startswith("Traceback (most recent call last):")
    assert thread == threading.current_thread().native_id
    assert (span, context) == (0, None)


def test_a_record_inside_a_span_names_the_span(logger: logging.Logger) -> None:
    with sdk.span("handle_request"):
        logger.warning("slow")
        expected = recording.current_span()
    (event,) = list(recording.logs)
    assert expected is not None and event[6] == expected[0]


def test_a_log_event_holds_no_object_the_garbage_collector_tracks() -> None:
    """The record path's promise (sdk/recording.py): outside async spans and trace contexts,
    a log event is a tuple of ints, strings and None, which the collector untracks, so a
    million buffered events cost no collection time."""
    import gc

    with sdk.span("outer"):
        sdk.info("inside", target="t")
    sdk.info("outside", target="t")
    events = list(recording.logs)
    assert len(events) == 2
    gc.collect()
    assert not any(gc.is_tracked(event) for event in events)
