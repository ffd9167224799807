"""The /graphql endpoint: what every request passes before and after GraphQL runs.

In order: a request id; the GraphiQL page (no credentials needed: it holds no data, and the
queries it sends carry the headers set in it); credentials (HTTP 401 before the body is read);
the tenant, and where the request asks to read from (``read_routing``); the caller's rate limit
(HTTP 429); the body, within a size and a time (HTTP 413 and 408); then strawberry; and last
every error's code, as the response is written.
"""

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET, UnsetType

from db.engine import Database
from db.json_values import StoredJSON
from db.tenancy import Scope as TenantScope
from graphql_api import media_types, metrics, request_ids, request_log
from graphql_api.auth.credentials import TENANT_HEADER, Authenticator, scope_for
from graphql_api.auth.identity import Caller, Role
from graphql_api.auth.rate_limits import HeavyRequests, RateLimited, RateLimiter, retry_after_header
from graphql_api.context import Context
from graphql_api.errors import ErrorCode, Refusal, with_code
from graphql_api.graphiql.page import graphiql_response
from graphql_api.guards.answer_budget import too_large
from graphql_api.live.connection import LiveConnection, close_code, credentials
from graphql_api.live.streams import Live
from graphql_api.read_routing import ReadFrom, read_from_header
from graphql_api.settings import Limits, RetentionSettings

RESPONSE_SLACK_BYTES = 64 * 1024
"""What an answer may hold past its budget once encoded: its errors, which the budget does not charge."""
UNREAD_BODY_BYTES = 64 * 1024
logger = logging.getLogger(__name__)
CLOSE_CONNECTION = {"Connection": "close"}
"""On refusing a body part-way: kept open, the connection has uvicorn read and discard the rest of
the body for as long as the client sends it, which a slow or endless client makes forever."""


@dataclass
class Admitted:
    """What the endpoint hands strawberry's ``get_context`` about a request it let through."""

    caller: Caller
    scope: TenantScope
    body_bytes: int
    read_from: ReadFrom | None = None
    response: Response | None = None
    """strawberry's response to this request, whose status and headers the answer's are made from."""
    context: Context | None = None


@dataclass
class Services:
    """What the endpoint needs at run time; the app's lifespan makes them."""

    database: Database
    authenticator: Authenticator
    rate_limiter: RateLimiter
    heavy_requests: HeavyRequests
    read_replica: Database | None = None
    """The read replica for dashboards' reads (``DATABASE_READ_URL``); None without one."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    live: Live | None = None
    """This process's subscriptions; None: websockets are refused."""
    credential_check_seconds: float = 2.0
    """How often a websocket's credentials are checked again."""


NOBODY = Caller(role=Role.READER, tenant="-", name="not yet authenticated", kind="websocket")
"""A websocket's caller until its ``connection_init`` is accepted (strawberry runs nothing before)."""


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, refused as soon as it is known to be too large or too slow."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refusal(400, ErrorCode.BAD_REQUEST, "Content-Length must be a number of bytes.")
        _check_size(int(declared), limits)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                _check_size(size, limits)
                chunks.append(chunk)
    except TimeoutError:
        raise Refusal(
            408,
            ErrorCode.REQUEST_TIMEOUT,
            f"The request body did not arrive within {limits.body_timeout_seconds:g} seconds.",
            headers=dict(CLOSE_CONNECTION),
        ) from None
    except ClientDisconnect:
        raise Refusal(
            400, ErrorCode.BAD_REQUEST, "The client went away before sending its request."
        ) from None
    return b"".join(chunks)


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_body_bytes:
        raise Refusal(
            413,
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"The request body is over {limits.max_body_bytes} bytes, the server's limit.",
            headers=dict(CLOSE_CONNECTION),
        )


def _large_unread_body(request: Request) -> bool:
    """Whether refusing before reading the body leaves much of it for the server to drain."""
    declared = request.headers.get("content-length")
    if declared is None:
        return "transfer-encoding" in request.headers  # chunked: of unknown length
    return not declared.isdigit() or int(declared) > UNREAD_BODY_BYTES


def _rate_limited(error: RateLimited) -> Refusal:
    return Refusal(
        429,
        ErrorCode.RATE_LIMITED,
        f"Too many requests for these credentials; retry in {error.retry_after:.2f} seconds.",
        headers={"Retry-After": retry_after_header(error.retry_after)},
        extensions={"retryAfter": round(error.retry_after, 3)},
    )


def _embedded(value: object) -> orjson.Fragment:
    if isinstance(value, StoredJSON):
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _decoded(value: object) -> object:
    if isinstance(value, StoredJSON):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


class WebSocketAdapter(ASGIWebSocketAdapter):
    async def send_json(self, message: Mapping[str, object]) -> None:
        # As text frames: graphql-ws clients (GraphiQL's, the viewer's) parse only those.
        encoded = self.view.encode_json(message)
        # A lone surrogate (kept by the JSON fallback) cannot travel in a text frame.
        text = encoded if isinstance(encoded, str) else encoded.decode("utf-8", "replace")
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error

    async def close(self, code: int, reason: str) -> None:
        # strawberry closes a refused connection_init with 4403 "Forbidden"; say why instead.
        connection: LiveConnection | None = getattr(self.ws.state, "live", None)
        if connection is not None and connection.refusal is not None:
            code, reason = close_code(connection.refusal), connection.refusal.message
        if connection is not None:
            await connection.close(code, reason)
        else:
            await super().close(code, reason)


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, its errors given codes as over HTTP."""

    async def _send_result_stream(self, operation: Operation[Context, None], result_source: Any) -> None:
        first = True
        async for result in result_source:
            if first and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            if result.errors:
                result.errors = [with_code(error) for error in result.errors]
            await operation.send_next(result)
            first = False

    async def _handle_pre_execution_error(
        self, operation: Operation[Context, None], result: PreExecutionError
    ) -> None:
        assert result.errors
        if self._get_pre_execution_close_reason(result.errors[0]) is None:
            result.errors = [with_code(error) for error in result.errors]
        await super()._handle_pre_execution_error(operation, result)


class SessionGraphQL(GraphQL[Context, None]):
    websocket_adapter_class = WebSocketAdapter
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self, *args: Any, limits: Limits, log_format: str = "text", with_metrics: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.log_format = log_format
        self.with_metrics = with_metrics

    def decode_json(self, data: str | bytes) -> object:
        # json.loads raises more than JSONDecodeError (deep nesting, over-long integers, bad
        # UTF-8); strawberry would let those through as HTTP 500.
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError) as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error
        if not isinstance(decoded, (dict, list)):
            raise HTTPException(400, "The request body must be a JSON object")
        return decoded

    def encode_json(self, data: object) -> bytes:
        # orjson: a tenth of json.dumps' time on a large answer, and stored messages go in as the
        # text PostgreSQL holds. It refuses what JSON cannot hold exactly (integers beyond 64 bits
        # in a stored state, lone surrogates), which json writes as Python always has.
        try:
            encoded = orjson.dumps(data, default=_embedded)
        except TypeError:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_decoded)
            encoded = text.encode("utf-8", "surrogatepass")
        most = self.limits.max_response_bytes
        if len(encoded) > most + RESPONSE_SLACK_BYTES:
            # The budget charged while executing missed something: the limit holds all the same.
            logger.warning(
                "an answer of %d bytes refused once encoded (%s)", len(encoded), request_ids.described()
            )
            refusal = Refusal(200, ErrorCode.RESPONSE_TOO_LARGE, str(too_large(most)))
            encoded = orjson.dumps({"data": None, **refusal.body()})
        return encoded

    async def render_graphql_ide(self, request: Request) -> Response:
        # Our page, not strawberry's: its assets come from this server, not a CDN (graphql_api/graphiql/).
        return graphiql_response()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._serve_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive=receive)
        request_id = request_ids.new_request_id()
        upstream = request_ids.upstream_id(request.headers.get(request_ids.HEADER))
        line = request_log.RequestLine(request_id, upstream, request.method)
        request.state.log_line = line
        token = request_ids.current.set(request_id)
        theirs = request_ids.upstream.set(upstream)
        try:
            response = await self._respond(request)
        finally:
            request_ids.upstream.reset(theirs)
            request_ids.current.reset(token)
        admitted: Admitted | None = getattr(request.state, "admitted", None)
        if admitted is not None and admitted.context is not None:
            line.named(admitted.context.operation_name)
        seconds = time.perf_counter() - line.started
        request_log.write(line, response.status_code, seconds, self.log_format)
        if self.with_metrics:
            metrics.record_request(line, response.status_code, seconds)
        response.headers[request_ids.HEADER] = request_id
        if (
            media_types.wants_graphql_response(request.headers.get("accept"))
            and response.media_type == media_types.JSON
        ):
            response.headers["content-type"] = media_types.CONTENT_TYPE
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        body_read = False
        try:
            if self.should_render_graphql_ide(self.request_adapter_class(request)):
                if self.graphql_ide:
                    return await self.render_graphql_ide(request)
                raise HTTPException(404, "Not Found")
            services: Services = request.app.state.services
            line: request_log.RequestLine = request.state.log_line
            caller = await services.authenticator.caller(request.headers)
            line.caller = caller.name
            tenant_scope = scope_for(caller, request.headers.get(TENANT_HEADER))
            line.tenant = None if tenant_scope.all_tenants else tenant_scope.tenant
            read_from = read_from_header(request.headers)
            if caller.rate_bucket is not None:
                try:
                    await services.rate_limiter.admit(caller.rate_bucket)
                except RateLimited as error:
                    raise _rate_limited(error) from None
            body = await read_body(request, self.limits)
            request._body = body  # strawberry reads the body through request.body(), which keeps this
            body_read = True
            request.state.admitted = Admitted(caller, tenant_scope, len(body), read_from)
            return await self.run(request)
        except Refusal as refusal:
            request.state.log_line.outcome = refusal.code.value
            headers = dict(refusal.headers)
            if not body_read and _large_unread_body(request):
                headers.update(CLOSE_CONNECTION)
            return JSONResponse(refusal.body(), status_code=refusal.status, headers=headers)
        except HTTPException as error:
            # strawberry answers these in plain text; clients expect a GraphQL error body with a code.
            bad = Refusal(error.status_code, ErrorCode.BAD_REQUEST, error.reason)
            request.state.log_line.outcome = bad.code.value
            return JSONResponse(bad.body(), status_code=error.status_code)

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None or services.live is None:
            await WebSocket(scope, receive, send).close(code=1013)  # starting, or no listener
            return
        token = request_ids.current.set(request_ids.new_request_id())
        try:
            await super().__call__(scope, receive, send)
        finally:
            connection: LiveConnection | None = getattr(WebSocket(scope, receive, send).state, "live", None)
            if connection is not None:
                connection.stop()
            request_ids.current.reset(token)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticates a websocket's ``connection_init``, as HTTP requests are: a refusal closes
        it (4401 without valid credentials, 4403 for a tenant the credentials may not act in)."""
        connection = context.connection
        assert connection is not None and context.request is None
        services: Services = connection.websocket.app.state.services
        connection.credentials = credentials(connection.websocket.headers, context.connection_params)
        try:
            caller = await services.authenticator.caller(connection.credentials)
            context.scope = scope_for(caller, connection.credentials.get(TENANT_HEADER))
        except Refusal as refusal:
            connection.refusal = refusal
            raise ConnectionRejectionError({"message": refusal.message, "code": refusal.code.value}) from None
        context.caller = caller
        connection.keep_checking(services.authenticator, services.credential_check_seconds)
        unset: UnsetType = UNSET
        return unset

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        if isinstance(request, WebSocket):
            connection = LiveConnection(request)
            request.state.live = connection
            return Context(
                db=services.database,
                caller=NOBODY,
                limits=self.limits,
                request_id=request_ids.current.get(),
                live=services.live,
                connection=connection,
            )
        admitted: Admitted = request.state.admitted
        admitted.response = response if isinstance(response, Response) else None
        admitted.context = Context(
            db=services.database,
            caller=admitted.caller,
            scope=admitted.scope,
            limits=self.limits,
            request=request if isinstance(request, Request) else None,
            request_id=request_ids.current.get(),
            body_bytes=admitted.body_bytes,
            heavy_requests=services.heavy_requests,
            read_replica=services.read_replica,
            read_from=admitted.read_from,
            retention=services.retention,
            live=services.live,
        )
        return admitted.context

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [with_code(error) for error in result.errors if isinstance(error, GraphQLError)]
            codes = [(error.extensions or {}).get("code") for error in result.errors]
            request.state.log_line.outcome = str(next((code for code in codes if code), "ERROR"))
            if self.with_metrics:
                metrics.record_statement_timeout(codes)
            admitted: Admitted | None = getattr(request.state, "admitted", None)
            if admitted is not None and admitted.response is not None:
                _rate_limited_status(result.errors, admitted.response)
                if media_types.wants_graphql_response(
                    request.headers.get("accept")
                ) and media_types.is_request_error(result.data, result.errors):
                    if admitted.response.status_code is None:
                        admitted.response.status_code = 400
                    answer = await super().process_result(request, result)
                    answer.pop("data", None)
                    return answer
        return await super().process_result(request, result)


def _rate_limited_status(errors: list[GraphQLError], response: Response) -> None:
    """A request refused for its caller's heavy requests is an HTTP 429 like any rate limit, so
    proxies and dashboards that read only the status back off too."""
    for error in errors:
        extensions = error.extensions or {}
        if extensions.get("code") == ErrorCode.RATE_LIMITED.value:
            response.status_code = 429
            wait = extensions.get("retryAfter", 1)
            response.headers["Retry-After"] = retry_after_header(float(wait))
            return
