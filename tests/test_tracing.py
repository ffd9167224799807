"""OpenTelemetry tracing: a Strands agent's spans and the server's join into one trace.

An OTLP/HTTP receiver in the test collects what both processes export: the agent (its own process,
``tests/client_agent_script.py traced-agent``, set up as Strands documents) and a real
``session-graphql serve`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the receiver.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from strands.types.session import SessionMessage

from client import AsyncGraphQLSessionRepository, GraphQLSessionRepository
from db.engine import Database, create_engine
from db.tenancy import Scope
from graphql_api.app import create_app
from graphql_api.context import Context
from graphql_api.schema import create_schema
from graphql_api.settings import Settings, SettingsError, TracingSettings
from graphql_api.tracing import OperationSpans, StatementTracers
from tests.conftest import free_port
from tests.server_process import REPO, ServerProcess

SERVER = "session-graphql"
AGENT = "agent-under-test"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    status_message: str

    def texts(self) -> list[str]:
        """Everything in the span that could carry content."""
        return [self.name, self.status_message, *(str(value) for value in self.attributes.values())]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


class OtlpReceiver:
    """Takes OTLP/HTTP trace exports (protobuf) on a free loopback port and keeps their spans."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status_message=span.status.message,
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def of(self, service: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.service == service]

    def wait_for(self, found: Callable[[], bool], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not found():
            assert time.monotonic() < deadline, f"not received within {seconds:g}s: {self.spans}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiving = OtlpReceiver()
    receiving.thread.start()
    yield receiving
    receiving.server.shutdown()


@pytest.fixture(scope="module")
def traced_server(
    database_url: str, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    log = tmp_path_factory.mktemp("traced") / "serve.log"
    server = ServerProcess(database_url, log, env=env).start()
    yield server
    server.stop()


def run_traced_agent(url: str, otlp_url: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_url, OTEL_SERVICE_NAME=AGENT, OTEL_BSP_SCHEDULE_DELAY="100")
    finished = subprocess.run(
        [sys.executable, "-m", "tests.client_agent_script", "traced-agent", url, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr.decode(errors="replace")[-3000:]
    output: dict[str, Any] = json.loads(finished.stdout)
    return output


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    by_id = {each.span_id: each for each in spans}
    found = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        found.append(span)
    return found


def test_an_agents_spans_and_the_servers_make_one_trace(
    traced_server: ServerProcess, receiver: OtlpReceiver
) -> None:
    secret = f"my card number is {uuid.uuid4().hex}"
    session_id = f"traced-{uuid.uuid4().hex[:12]}"
    output = run_traced_agent(
        f"{traced_server.base_url}/graphql", receiver.url, session_id, "support", secret
    )
    trace_id = output["trace_id"]
    assert secret in output["replies"][0]  # the fake model echoes it: it went through the agent

    def operation_spans() -> list[ReceivedSpan]:
        return [s for s in receiver.of(SERVER) if "session_graphql.outcome" in s.attributes]

    receiver.wait_for(
        lambda: any(s.attributes.get("graphql.operation.name") == "CreateMessage" for s in operation_spans())
    )
    time.sleep(0.5)  # the rest of the server's batch
    everything = receiver.spans
    in_trace = [s for s in everything if s.trace_id == trace_id]
    server_spans = [s for s in in_trace if s.service == SERVER]
    agent_spans = [s for s in in_trace if s.service == AGENT]

    # The agent's own spans (Strands' invocation span, under the test's span) are in the trace.
    assert any(s.name == "support conversation" for s in agent_spans)
    assert any(s.name.startswith("invoke_agent") for s in agent_spans), [s.name for s in agent_spans]

    operations = [s for s in server_spans if "session_graphql.outcome" in s.attributes]
    names = {s.attributes.get("graphql.operation.name") for s in operations}
    assert {"CreateSession", "CreateAgent", "CreateMessage"} <= names, names
    create = next(s for s in operations if s.attributes.get("graphql.operation.name") == "CreateMessage")
    assert create.name == "mutation CreateMessage"
    assert create.attributes["graphql.operation.type"] == "mutation"
    assert create.attributes["session_graphql.outcome"] == "ok"
    assert create.attributes["session_graphql.request_id"]

    # The HTTP server span is the operation's parent; above it, a span of the agent's process.
    [http_span, *above] = ancestors(create, in_trace)
    assert http_span.service == SERVER and http_span.kind == SpanMessage.SPAN_KIND_SERVER
    assert http_span.name == "POST /graphql"
    assert above and all(s.service == AGENT for s in above)

    # SQL spans below the operation span, statements with their placeholders.
    statements = [
        s for s in server_spans if "db.statement" in s.attributes and create in ancestors(s, in_trace)
    ]
    assert any("INSERT" in str(s.attributes["db.statement"]) for s in statements), [
        (s.name, s.kind, s.parent_id, s.span_id, s.attributes) for s in server_spans
    ]
    assert all(s.kind == SpanMessage.SPAN_KIND_CLIENT for s in statements)

    # Nothing the server exported holds the conversation, and every span it exported continues a
    # caller's trace: the background tasks (the rollups' fold, every second) and /ready made none.
    for span in receiver.of(SERVER):
        assert not any(secret[-32:] in text for text in span.texts()), span
    assert all(span.parent_id for span in receiver.of(SERVER))


def test_a_get_requests_query_string_stays_out_of_the_http_span(
    traced_server: ServerProcess, receiver: OtlpReceiver
) -> None:
    secret = uuid.uuid4().hex
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    query = "query ReadSession($id: String!) { session(sessionId: $id) { sessionId } }"
    response = httpx.get(
        f"{traced_server.base_url}/graphql",
        params={"query": query, "variables": json.dumps({"id": secret})},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 200, response.text
    receiver.wait_for(
        lambda: any(
            s.trace_id == trace_id and "session_graphql.outcome" in s.attributes for s in receiver.spans
        )
    )
    time.sleep(0.3)
    spans = [s for s in receiver.spans if s.trace_id == trace_id]
    http_span = next(s for s in spans if s.kind == SpanMessage.SPAN_KIND_SERVER)
    assert http_span.attributes.get("http.target") == "/graphql"
    for span in spans:
        assert not any(secret in text for text in span.texts()), span


def test_nothing_is_exported_with_the_sdk_disabled(
    database_url: str, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SDK_DISABLED": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "disabled-server",
    }
    server = ServerProcess(database_url, tmp_path / "serve.log", env=env).start()
    try:
        repository = GraphQLSessionRepository(f"{server.base_url}/graphql")
        assert repository.read_session("nobody") is None
        repository.close()
        time.sleep(1.5)
    finally:
        server.stop()
    assert receiver.of("disabled-server") == []


def test_an_app_without_tracing_installs_no_middleware_and_no_extension(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url))
    assert not any("Span" in m.cls.__name__ for m in app.user_middleware)  # type: ignore[attr-defined]
    graphql = next(route for route in app.routes if getattr(route, "path", None) == "/graphql")
    extensions = graphql.endpoint.schema.extensions  # type: ignore[attr-defined]
    assert not any("Span" in getattr(e, "__name__", type(e).__name__) for e in extensions)


class HeaderCatcher:
    """A stand-in GraphQL server that answers every request ``{"data": {"session": null}}`` and
    keeps the headers it was sent."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                catcher.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = b'{"data": {"session": null}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/graphql"


@pytest.fixture
def catcher() -> Iterator[HeaderCatcher]:
    catching = HeaderCatcher()
    yield catching
    catching.server.shutdown()


def test_the_client_sends_traceparent_only_inside_a_span(catcher: HeaderCatcher) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with GraphQLSessionRepository(catcher.url, token="sgq_test") as repository:
        assert repository.read_session("s-1") is None
        with tracer.start_as_current_span("agent turn") as span:
            assert repository.read_session("s-1") is None
    outside, inside = catcher.headers
    assert "traceparent" not in outside
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert inside["traceparent"].split("-")[1] == trace_id
    assert inside["authorization"] == "Bearer sgq_test"


async def test_the_async_client_sends_traceparent_only_inside_a_span(catcher: HeaderCatcher) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    async with AsyncGraphQLSessionRepository(catcher.url, token=lambda: "sgq_test") as repository:
        assert await repository.read_session("s-1") is None
        with tracer.start_as_current_span("agent turn") as span:
            assert await repository.read_session("s-1") is None
    outside, inside = catcher.headers
    assert "traceparent" not in outside
    assert inside["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
    assert inside["authorization"] == "Bearer sgq_test"


def test_tracing_is_on_with_an_otlp_endpoint_and_off_otherwise() -> None:
    assert not TracingSettings.from_env({}).enabled
    on = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert on.enabled and on.endpoint == "http://collector:4318"
    assert TracingSettings.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}).enabled
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert not TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **off}).enabled
    assert Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).tracing.enabled


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "http(s) URL"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTLP/HTTP"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
    ],
)
def test_tracing_settings_the_sdk_would_quietly_replace_are_refused(
    variables: dict[str, str], named: str
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", **variables}
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        TracingSettings.from_env(env)


async def test_an_operation_span_names_the_tenant_and_the_outcome(database_url: str) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    schema = create_schema(operation_spans=lambda: OperationSpans(provider.get_tracer(__name__)))
    database = Database(create_engine(database_url))
    try:
        for document in ("query Probe { __typename }", "query Broken { nope }"):
            context = Context(db=database, scope=Scope("acme"), request_id="r-1")
            await schema.execute(document, context_value=context)
    finally:
        await database.dispose()
    probe, broken = exported.get_finished_spans()
    assert probe.name == "query Probe"
    assert dict(probe.attributes or {}) == {
        "graphql.operation.name": "Probe",
        "graphql.operation.type": "query",
        "session_graphql.tenant": "acme",
        "session_graphql.request_id": "r-1",
        "session_graphql.outcome": "ok",
    }
    assert broken.attributes is not None
    assert broken.attributes["session_graphql.outcome"] == "GRAPHQL_VALIDATION_FAILED"
    assert broken.status.status_code is StatusCode.UNSET  # the caller's mistake, not the server's


def test_statement_spans_are_made_only_under_a_span_and_keep_no_driver_message() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    statements = StatementTracers(provider).get_tracer("sqlalchemy")
    alone = statements.start_span("SELECT")  # a background task's statement: no request above it
    assert not alone.is_recording()
    alone.end()
    with provider.get_tracer(__name__).start_as_current_span("request"):
        failed = statements.start_span("INSERT")
        failed.set_status(Status(StatusCode.ERROR, 'invalid input syntax for type integer: "my secret"'))
        failed.end()
    names = [span.name for span in exported.get_finished_spans()]
    assert names == ["INSERT", "request"]
    insert = exported.get_finished_spans()[0]
    assert insert.status.status_code is StatusCode.ERROR
    assert insert.status.description is None


def test_a_write_behind_write_is_sent_in_the_trace_that_queued_it(catcher: HeaderCatcher) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    message = SessionMessage(message={"role": "user", "content": [{"text": "hi"}]}, message_id=0)  # type: ignore[arg-type]
    with GraphQLSessionRepository(catcher.url, write_behind=True) as repository:
        with tracer.start_as_current_span("agent turn") as span:
            repository.create_message("s-1", "a-1", message)
        repository.flush()  # from the sender thread, after the span ended
    [sent] = catcher.headers
    assert sent["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")


async def test_an_async_write_behind_write_is_sent_in_the_trace_that_queued_it(
    catcher: HeaderCatcher,
) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    message = SessionMessage(message={"role": "user", "content": [{"text": "hi"}]}, message_id=0)  # type: ignore[arg-type]
    async with AsyncGraphQLSessionRepository(catcher.url, write_behind=True) as repository:
        with tracer.start_as_current_span("agent turn") as span:
            await repository.create_message("s-1", "a-1", message)
        await repository.flush()
    [sent] = catcher.headers
    assert sent["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")


def test_each_worker_sends_its_spans_and_flushes_them_when_stopped(
    database_url: str, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "two-workers",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves before the workers stop
        "SESSION_GRAPHQL_WORKERS": "2",
    }
    server = ServerProcess(database_url, tmp_path / "serve.log", env=env).start()
    try:
        with httpx.Client(base_url=server.base_url) as http:
            for _ in range(6):
                sent = http.post("/graphql", json={"query": "query Probe { __typename }"})
                assert sent.status_code == 200
        time.sleep(0.5)
        assert receiver.of("two-workers") == []
    finally:
        server.stop()
    probes = [s for s in receiver.of("two-workers") if s.attributes.get("graphql.operation.name") == "Probe"]
    assert len(probes) == 6, server.output()
