"""OpenTelemetry tracing, off unless ``settings.TracingSettings`` finds an OTLP endpoint; off, none of
this is installed (no provider, middleware, extension or SQL listener), so it costs nothing.

A request makes, in the caller's trace when it sends a W3C ``traceparent`` (the client does):

- the HTTP server span, from ``opentelemetry-instrumentation-asgi``, without the query string (a
  GraphQL GET carries its document and variables there); probes (``/health``, ``/ready``) make
  none unless ``OTEL_PYTHON_ASGI_EXCLUDED_URLS`` says otherwise;
- under it, one span per GraphQL operation (``OperationSpans``): its name and type, the tenant,
  the outcome (``ok`` or the error code, as the request log has it) and the request id;
- under that, a span per SQL statement, from ``opentelemetry-instrumentation-sqlalchemy``
  (asyncpg's instrumentation as well would repeat every statement). Statements with no span above
  them make none: the background tasks' (the rollups' fold runs every second), probes' and
  start-up's. A statement span holds the SQL with its placeholders, never the parameters, and a
  failed one the status without the driver's message, which may quote a value the request sent.

Spans never hold content: no message text, state, variables or document. Not strawberry's
per-field tracing extension either: it makes every field a coroutine, at a measured cost.
"""

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from graphql import GraphQLError, get_operation_ast
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.http import get_excluded_urls, parse_excluded_urls
from opentelemetry.util.types import Attributes, AttributeValue
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from graphql_api.context import Context
from graphql_api.errors import ErrorCode, classify
from graphql_api.request_log import MOST_OPERATION_CHARS

logger = logging.getLogger(__name__)

SERVICE = "session-graphql"
"""``service.name`` unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` names another."""
PROBES = "/health$,/ready$"
"""Not traced by default: a load balancer asks them every few seconds."""
SERVER_FAULTS = frozenset(
    {ErrorCode.INTERNAL_SERVER_ERROR, ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.STATEMENT_TIMEOUT}
)
"""Outcomes that mark an operation's span as failed; the others are answers to the caller's request."""
HIDDEN_QUERY = "session_graphql.query_string"


class Tracing:
    """The app's tracer provider, made with the app. The lifespan starts its exporter and stops it
    (flushing what is left), so with ``serve --workers N`` each worker process exports its own."""

    def __init__(self) -> None:
        # The SDK reads the sampler (OTEL_TRACES_SAMPLER), span limits and resource from the environment.
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
        self.provider = TracerProvider(resource=resource)
        self.tracer = self.provider.get_tracer(__name__)
        self._statements = SQLAlchemyInstrumentor()

    def start(self, engines: Sequence[AsyncEngine]) -> None:
        """Exports spans (OTLP over HTTP, batched; OTEL_EXPORTER_OTLP_* and OTEL_BSP_* apply) and
        traces the statements of ``engines``."""
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._statements.instrument(
            engines=[engine.sync_engine for engine in engines],
            tracer_provider=StatementTracers(self.provider),
            enable_commenter=False,
            # It declares SQLAlchemy below 2.1 and would otherwise do nothing; the events it listens
            # to are the same in 2.1, and tests/test_tracing.py checks its spans arrive.
            skip_dep_check=True,
        )
        # Its span around every pool checkout ("connect") would be one more span per statement,
        # a third of the spans, for a wait the gap before the statement's span shows as well.
        unwrap(Engine, "connect")

    def stop(self) -> None:
        self._statements.uninstrument()
        self.provider.shutdown()

    def middleware(self) -> Middleware:
        return Middleware(HttpSpans, provider=self.provider)

    def extension(self) -> "OperationSpans":
        return OperationSpans(self.tracer)


class HttpSpans:
    """The ASGI instrumentation's server span for each request, with the query string hidden from it."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        configured = os.environ.get(
            "OTEL_PYTHON_ASGI_EXCLUDED_URLS", os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
        )
        self.traced = OpenTelemetryMiddleware(
            _query_restored(app),
            excluded_urls=get_excluded_urls("ASGI")
            if configured is not None
            else parse_excluded_urls(PROBES),
            tracer_provider=provider,
            # A span per message received and sent would outnumber everything else.
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string")
        if query:
            scope = {**scope, "query_string": b"", HIDDEN_QUERY: query}
        await self.traced(scope, receive, send)


def _query_restored(app: ASGIApp) -> ASGIApp:
    async def restored(scope: Scope, receive: Receive, send: Send) -> None:
        if HIDDEN_QUERY in scope:
            scope = {**scope, "query_string": scope[HIDDEN_QUERY]}
        await app(scope, receive, send)

    return restored


class OperationSpans(SchemaExtension):
    """One span per GraphQL operation, the current span while it is parsed, checked and run, so the
    SQL it sends is traced under it. First among the schema's extensions: it wraps the others."""

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    async def on_operation(self) -> AsyncIterator[None]:
        span = self.tracer.start_span("GraphQL operation", kind=SpanKind.INTERNAL)
        failure: ErrorCode | None = None
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                yield
        except Exception as error:
            failure = classify(GraphQLError(str(error), original_error=error))
            raise
        finally:
            self._describe(span, failure)
            span.end()

    def _describe(self, span: Span, failure: ErrorCode | None) -> None:
        execution = self.execution_context
        document = execution.graphql_document
        operation = get_operation_ast(document, execution.operation_name) if document is not None else None
        # The client's own words (the request's operationName), cut as the request log cuts them.
        name = (execution.operation_name or "")[:MOST_OPERATION_CHARS]
        attributes: dict[str, AttributeValue] = {}
        if operation is not None:
            kind = operation.operation.value
            attributes["graphql.operation.type"] = kind
            span.update_name(f"{kind} {name}" if name else kind)
        if name:
            attributes["graphql.operation.name"] = name
        request = execution.context
        if isinstance(request, Context):
            if not request.scope.all_tenants:
                attributes["session_graphql.tenant"] = request.scope.tenant
            if request.request_id is not None:
                attributes["session_graphql.request_id"] = request.request_id
        if failure is None:
            result = execution.result
            errors = result.errors if result is not None else execution.pre_execution_errors
            failure = classify(errors[0]) if errors else None
        attributes["session_graphql.outcome"] = "ok" if failure is None else failure.value
        span.set_attributes(attributes)
        if failure in SERVER_FAULTS:
            span.set_status(Status(StatusCode.ERROR, failure.value if failure else None))


class StatementTracers(trace.TracerProvider):
    """What the SQLAlchemy instrumentation gets as its provider: see ``_StatementTracer``."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _StatementTracer(
            self.provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        )


class _StatementTracer(trace.Tracer):
    """Spans for statements sent on behalf of a traced request only (a span above them), and
    without the driver's error message."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start_span(
        self,
        name: str,
        context: Any = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        span = self.tracer.start_span(name, context, kind, attributes, links, start_time, False, False)
        return _StatementSpan(span)

    def start_as_current_span(
        self, name: str, context: Any = None, kind: SpanKind = SpanKind.INTERNAL, *_: Any, **__: Any
    ) -> Any:
        """Only the instrumentation's "connect" span used it, which ``Tracing.start`` takes away."""
        return trace.use_span(self.start_span(name, context, kind), end_on_exit=True)


class _StatementSpan(Span):
    """A statement's span whose status keeps its code but not its message: the instrumentation puts
    the driver's error there, and PostgreSQL quotes the value it could not take
    (``invalid input syntax for type integer: "..."``)."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def end(self, end_time: int | None = None) -> None:
        self.span.end(end_time)

    def get_span_context(self) -> trace.SpanContext:
        return self.span.get_span_context()

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.span.set_attributes(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        self.span.add_event(name, attributes, timestamp)

    def update_name(self, name: str) -> None:
        self.span.update_name(name)

    def is_recording(self) -> bool:
        return self.span.is_recording()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self.span.set_status(Status(status.status_code if isinstance(status, Status) else status))

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Left out: the exception's message is the driver's (see the class)."""
