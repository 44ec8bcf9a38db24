"""Metrics and traces of the Lambda handlers (powertools), and nothing at all when not on Lambda.

- **Metrics**: CloudWatch embedded metric format (EMF), one JSON line on stdout per invocation,
  namespace ``POWERTOOLS_METRICS_NAMESPACE`` (default ``blocklake``), dimension ``service``.
  On Lambda they are on unless ``POWERTOOLS_METRICS_DISABLED`` is true. Off Lambda (the local
  server, the CLI, tests) they are off unless ``POWERTOOLS_METRICS_DISABLED=false`` says
  otherwise: the local server would otherwise print a JSON line per request, and its handlers
  run on many threads while an EMF metric set belongs to one invocation at a time. Off, a
  ``NullMetrics`` takes the calls and drops them (no buffer, no output).
- **Traces**: X-Ray through powertools' ``Tracer``, only on Lambda, only when ``aws_xray_sdk`` is
  importable and ``POWERTOOLS_TRACE_DISABLED`` is not true. Otherwise a ``NullTracer``: the
  handlers never fail for want of X-Ray (the daemon, the SDK or the permission).

Each handler gets its own ``EphemeralMetrics`` (powertools' ``Metrics`` share one metric set per
process, so the three handlers of the local server would mix their dimensions).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.shared.functions import strtobool

__all__ = ["MetricUnit", "metrics_for", "observed", "tracer_for"]

DEFAULT_NAMESPACE = "blocklake"

Handler = Callable[[dict, Any], dict]


class MetricsSink(Protocol):
    metric_set: dict

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None: ...

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None: ...


class NullMetrics:
    """Takes metrics and keeps none: what the handlers record off Lambda."""

    metric_set: dict = {}  # noqa: RUF012  (always empty, never written)

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        pass

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        pass


class NullTracer:
    """The parts of powertools' ``Tracer`` the handlers use, doing nothing."""

    enabled = False

    def put_annotation(self, key: str, value: str | int | float | bool) -> None:
        pass

    @contextmanager
    def subsegment(self, name: str) -> Iterator[None]:
        yield


class XRayTracer:
    """powertools' ``Tracer``, reduced to what the handlers use."""

    enabled = True

    def __init__(self, service: str) -> None:
        from aws_lambda_powertools import Tracer

        self.tracer = Tracer(service=service)

    def put_annotation(self, key: str, value: str | int | float | bool) -> None:
        self.tracer.put_annotation(key, value)

    @contextmanager
    def subsegment(self, name: str) -> Iterator[None]:
        with self.tracer.provider.in_subsegment(f"## {name}"):
            yield


def in_lambda(env: dict[str, str] | os._Environ = os.environ) -> bool:
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and not env.get("AWS_SAM_LOCAL")


def _flag(env: dict[str, str] | os._Environ, name: str) -> bool | None:
    value = env.get(name)
    return None if value is None or value == "" else strtobool(value)


def metrics_for(service: str, enabled: bool | None = None) -> MetricsSink:
    """EMF metrics for ``service`` when enabled (by default: on Lambda), else a ``NullMetrics``."""
    if enabled is None:
        disabled = _flag(os.environ, "POWERTOOLS_METRICS_DISABLED")
        enabled = not disabled if disabled is not None else in_lambda()
    if not enabled:
        return NullMetrics()
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    return EphemeralMetrics(service=service, namespace=namespace)


def tracer_for(service: str, enabled: bool | None = None) -> NullTracer | XRayTracer:
    """An X-Ray tracer on Lambda (when the SDK is there and tracing is not disabled)."""
    if enabled is None:
        enabled = (
            in_lambda()
            and not _flag(os.environ, "POWERTOOLS_TRACE_DISABLED")
            and importlib.util.find_spec("aws_xray_sdk") is not None
        )
    return XRayTracer(service) if enabled else NullTracer()


def observed(
    handle: Handler, logger: Logger, metrics: MetricsSink, tracer: NullTracer | XRayTracer
) -> Handler:
    """``handle`` with the Lambda context in its logs, its metrics flushed at the end of each
    invocation (also when it raises), and traced when tracing is on."""

    @functools.wraps(handle)
    def flushing(event: dict, context: Any) -> dict:
        try:
            return handle(event, context)
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()

    wrapped: Handler = flushing
    if isinstance(tracer, XRayTracer):
        # The response may be a page of query results: too big for a trace segment, and data.
        wrapped = tracer.tracer.capture_lambda_handler(wrapped, capture_response=False)
    return logger.inject_lambda_context(wrapped)
