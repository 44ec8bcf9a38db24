"""Report A, findings 6 and 7: W3C flags and bytes headers, metric attributes with
properties, spans left by GeneratorExit, custom logging levels."""

from __future__ import annotations

import logging

from blocklake import sdk
from blocklake.format.encode import Attributes
from blocklake.sdk import recording
from blocklake.sdk.logging_handler import LoggingHandler

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_not_sampled_incoming_flag_stays_not_sampled_on_outgoing_calls() -> None:
    with recording.trace_context(f"00-{TRACE}-{PARENT}-00"):
        assert recording.current_traceparent() == f"00-{TRACE}-{PARENT}-00"
        with sdk.async_span("report_a") as span:
            assert span.traceparent.endswith("-00")
            assert recording.current_traceparent().endswith("-00")
    with recording.trace_context(f"00-{'1' * 32}-{PARENT}-01"):
        assert recording.current_traceparent().endswith("-01")


def test_a_bytes_traceparent_is_read_as_ascii() -> None:
    with recording.trace_context(f"00-{TRACE}-{PARENT}-01".encode()):
        assert recording.current_traceparent() == f"00-{TRACE}-{PARENT}-01"
    assert recording.TraceContext.parse(b"\xff" * 55) is None


def test_metric_attributes_and_properties_are_merged() -> None:
    before = len(recording.measures)
    recording.metric("m", 1.0, attributes={"a": "1"}, properties={"b": "2", "a": "0"})
    recording.metric("m", 1.0, attributes=Attributes.of({"c": 3}), properties={"b": 2})
    events = list(recording.measures)[before:]
    assert events[0][4] == {"b": "2", "a": "1"}
    assert events[1][4] == {"b": 2, "c": 3}


def test_a_span_left_by_generator_exit_is_not_an_error() -> None:
    def generator():
        with sdk.span("gen"):
            yield 1

    state = recording._thread_state()
    before = len(state)
    iterator = generator()
    next(iterator)
    iterator.close()  # GeneratorExit inside the span
    end = list(state)[before:][-1]
    assert len(end) == 2  # (end id, ticks): no exception fields


def test_a_custom_logging_level_keeps_its_number_in_properties() -> None:
    logger = logging.getLogger("report_a_custom")
    logger.setLevel(1)
    handler = LoggingHandler()
    logger.addHandler(handler)
    seen = []
    original = recording.log
    recording.log = lambda *args: seen.append(args)
    try:
        logger.log(25, "hello")
        logger.info("plain")
    finally:
        recording.log = original
        logger.removeHandler(handler)
    assert seen[0][0] == recording.INFO
    assert seen[0][3]["logging.levelno"] == "25"
    assert seen[0][3]["logging.levelname"] == "Level 25"
    assert "logging.levelno" not in seen[1][3]
