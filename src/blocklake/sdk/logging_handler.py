"""A ``logging.Handler`` so that code already using the standard library's logging flows in."""

from __future__ import annotations

import logging

from blocklake.sdk import recording
from blocklake.sdk.recording import DEBUG, ERROR, FATAL, INFO, TRACE, WARN


def level_code(levelno: int) -> int:
    """stdlib level number to wire level code (anything between two levels takes the lower)."""
    if levelno >= logging.CRITICAL:
        return FATAL
    if levelno >= logging.ERROR:
        return ERROR
    if levelno >= logging.WARNING:
        return WARN
    if levelno >= logging.INFO:
        return INFO
    return DEBUG if levelno >= logging.DEBUG else TRACE


class LoggingHandler(logging.Handler):
    """Records each ``LogRecord`` as a log entry: target is the logger's name, the message is
    formatted with its arguments, the exception (if any) goes to the ``exception`` property."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            properties = None
            if record.exc_info:
                properties = {"exception": logging.Formatter().formatException(record.exc_info)}
            recording.log(level_code(record.levelno), record.getMessage(), record.name, properties)
        except Exception:
            self.handleError(record)
