"""The ASGI application: GraphQL at /graphql, liveness at /health, readiness at /ready."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from db.embedded import EmbeddedPostgres, start_embedded_postgres
from db.engine import Database, create_engine
from db.migrate import upgrade_async
from graphql_api.context import Context
from graphql_api.errors import ErrorCode
from graphql_api.schema import schema
from graphql_api.settings import Settings

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


class SessionGraphQL(GraphQL[Context, None]):
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as error:
            # strawberry answers these in plain text; clients expect a GraphQL error body with a code.
            body = {
                "errors": [{"message": error.reason, "extensions": {"code": ErrorCode.BAD_REQUEST.value}}]
            }
            response = JSONResponse(body, status_code=error.status_code)
        await response(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        database: Database = request.app.state.database
        return Context(db=database, request=request if isinstance(request, Request) else None)


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    database: Database | None = getattr(request.app.state, "database", None)
    if database is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        await asyncio.wait_for(database.ping(), READY_TIMEOUT_SECONDS)
    except Exception as error:
        logger.warning("readiness check failed: %r", error)
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def home(_: Request) -> Response:
    return RedirectResponse("/graphql")


def create_app(settings: Settings) -> Starlette:
    """The application; its lifespan owns the engine and, with no DATABASE_URL, the embedded database."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedPostgres | None = None
        url = settings.database_url
        if url is None:
            embedded = await asyncio.to_thread(start_embedded_postgres, settings.data_dir)
            url = embedded.url
        try:
            if embedded is not None or settings.migrate_on_start:
                await upgrade_async(url)
            database = Database(
                create_engine(url, pool_size=settings.pool_size, max_overflow=settings.max_overflow)
            )
            app.state.database = database
            try:
                yield
            finally:
                await database.dispose()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    graphql = SessionGraphQL(schema, graphql_ide="graphiql" if settings.graphiql else None)
    return Starlette(
        routes=[
            Route("/", home),
            Route("/health", health),
            Route("/ready", ready),
            # Every method reaches strawberry, so a wrong one gets its 405 as a GraphQL error body.
            Route("/graphql", graphql),
        ],
        lifespan=lifespan,
    )
