"""A ``logging.Handler`` so that code already using the standard library's logging flows in,
keeping what people put in their records."""

from __future__ import annotations

import logging

from blocklake.sdk import recording
from blocklake.sdk.recording import DEBUG, ERROR, FATAL, INFO, TRACE, WARN

_STANDARD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)
"""What every ``LogRecord`` has; anything else on a record came from ``extra``."""


def level_code(levelno: int) -> int:
    """stdlib level number to wire level code (anything between two levels takes the lower):
    CRITICAL is FATAL and WARNING is WARN, the lake's (OpenTelemetry's) names."""
    if levelno >= logging.CRITICAL:
        return FATAL
    if levelno >= logging.ERROR:
        return ERROR
    if levelno >= logging.WARNING:
        return WARN
    if levelno >= logging.INFO:
        return INFO
    return DEBUG if levelno >= logging.DEBUG else TRACE


_STANDARD_LEVELS = frozenset(
    {logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL}
)


class LoggingHandler(logging.Handler):
    """Records each ``LogRecord`` as a log entry: target is the logger's name, the message is
    formatted with its arguments; properties hold the ``extra`` fields (as text), where it was
    logged from (``code.filepath``, ``code.lineno``, ``code.function``, OpenTelemetry's names)
    and, if any, the formatted traceback (``exception``) and stack (``stack``). The thread, span
    and trace are recorded as for any log entry (the handler runs on the logging thread)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            properties = {
                key: value if type(value) is str else _text(value)
                for key, value in record.__dict__.items()
                if key not in _STANDARD_ATTRIBUTES
            }
            properties["code.filepath"] = record.pathname
            properties["code.lineno"] = str(record.lineno)
            properties["code.function"] = record.funcName or ""
            if record.exc_info:
                properties["exception"] = logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                properties["exception"] = record.exc_text
            if record.stack_info:
                properties["stack"] = record.stack_info
            if record.levelno not in _STANDARD_LEVELS:  # a custom level: rounded down, kept here
                properties["logging.levelno"] = str(record.levelno)
                properties["logging.levelname"] = record.levelname
            recording.log(level_code(record.levelno), record.getMessage(), record.name, properties)
        except Exception:
            self.handleError(record)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"
