"""The caller's trace, sent with every request: the W3C ``traceparent`` (and ``tracestate``,
``baggage``) of the current OpenTelemetry span, so the server's spans join the trace of the agent
that made the call (Strands' invocation and tool spans). OpenTelemetry's API comes with Strands;
with no span active, or no tracer provider set up, nothing is added."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate
from opentelemetry.context import Context


def with_trace_context(extra_args: dict[str, Any] | None) -> dict[str, Any] | None:
    """gql's ``extra_args`` for one request, with the current trace context among its headers."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    if not headers:
        return extra_args
    if extra_args is None:
        return {"headers": headers}
    return {**extra_args, "headers": {**extra_args.get("headers", {}), **headers}}


@contextmanager
def within(caller: Context) -> Iterator[None]:
    """Runs the block in the caller's ``Context``: how a write-behind sender sends a queued write
    in the trace of the call that queued it (``PendingWrite.trace_context``)."""
    token = context.attach(caller)
    try:
        yield
    finally:
        context.detach(token)
