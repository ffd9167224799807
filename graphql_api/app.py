"""The ASGI application: the conversation viewer at /, GraphQL at /graphql, liveness at /health,
readiness at /ready."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from db.embedded import EmbeddedPostgres, start_embedded_postgres
from db.engine import Database, create_engine
from db.migrate import upgrade_async
from db.notifications import Listener
from db.read_replica import ReadReplica
from graphql_api.auth.api_keys import KeyRing
from graphql_api.auth.credentials import TENANT_HEADER, Authenticator
from graphql_api.auth.jwt import JwtVerifier
from graphql_api.auth.rate_limits import HeavyRequests, RateLimiter
from graphql_api.background import background_tasks
from graphql_api.endpoint import Services, SessionGraphQL
from graphql_api.graphiql.assets import graphiql_static_files
from graphql_api.live.hub import Hub
from graphql_api.live.streams import Live
from graphql_api.read_routing import READ_FROM_HEADER
from graphql_api.request_ids import HEADER as REQUEST_ID_HEADER
from graphql_api.schema import create_schema
from graphql_api.settings import Settings
from graphql_api.viewer.assets import viewer_static_files
from graphql_api.viewer.page import viewer_page

if TYPE_CHECKING:
    from graphql_api.tracing import Tracing

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        await asyncio.wait_for(services.database.ping(), READY_TIMEOUT_SECONDS)
    except Exception as error:
        logger.warning("readiness check failed: %r", error)
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def graphiql_home(_: Request) -> Response:
    return RedirectResponse("/graphql")


def read_replica(settings: Settings, primary: Database) -> ReadReplica | None:
    """The pool on ``DATABASE_READ_URL``, sized as the primary's; not migrated nor checked at start
    (it streams from the primary, and dashboards read from the primary while it is away)."""
    if settings.read_replica.url is None:
        return None
    engine = create_engine(
        settings.read_replica.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        statement_timeout_ms=settings.limits.statement_timeout_ms,
        read_only=True,
    )
    return ReadReplica(
        engine,
        primary,
        fallback=settings.read_replica.fallback == "primary",
        retry_seconds=settings.read_replica.retry_seconds,
    )


def _tracing(settings: Settings) -> "Tracing | None":
    if not settings.tracing.enabled:
        return None
    # Imported only when on: the SDK and its exporter are no part of a server that does not trace.
    from graphql_api.tracing import Tracing

    return Tracing()


def create_app(settings: Settings) -> Starlette:
    """The application; its lifespan owns the engine and, with no DATABASE_URL, the embedded database.

    Raises ``SettingsError`` for settings that only show they are unusable when put to use (a
    JWT public key that is not one).
    """
    jwt = JwtVerifier(settings.jwt) if settings.jwt.enabled else None
    tracing = _tracing(settings)

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
                create_engine(
                    url,
                    pool_size=settings.pool_size,
                    max_overflow=settings.max_overflow,
                    statement_timeout_ms=settings.limits.statement_timeout_ms,
                )
            )
            replica = read_replica(settings, database)
            if tracing is not None:
                tracing.start([database.engine, *([replica.engine] if replica is not None else [])])
                logger.info("tracing: sending spans to %s", settings.tracing.endpoint)
            keys = KeyRing(database, settings.key_refresh_seconds)
            try:
                await keys.refresh()
            except Exception as error:
                # Live but not ready: requests are refused until the keys can be read.
                logger.warning("cannot read API keys yet; retrying in the background: %r", error)
            limiter = RateLimiter(database, settings.limits.rate_per_second, settings.limits.rate_burst)
            authenticator = Authenticator(keys, jwt, open_to_proxied=settings.insecure)
            if authenticator.open:
                logger.warning(
                    "no API key exists and no JWT issuer is configured: the server is OPEN, every "
                    "request acts as admin (make a key with `session-graphql token create`)"
                )
            hub = Hub(per_key=settings.live.per_key)
            listener = Listener(
                settings.live.listen_url or url,
                hub.on_event,
                hub.on_listening,
                probe_seconds=settings.live.probe_seconds,
            )
            live = Live(
                hub,
                database,
                buffer_events=settings.live.buffer_events,
                slow_seconds=settings.live.slow_seconds,
            )
            app.state.services = Services(
                database=database,
                authenticator=authenticator,
                rate_limiter=limiter,
                heavy_requests=HeavyRequests(
                    settings.limits.max_heavy_requests, settings.limits.heavy_wait_seconds
                ),
                read_replica=replica,
                retention=settings.retention,
                live=live,
                credential_check_seconds=min(settings.key_refresh_seconds, 2.0),
            )
            # What start-up made (modules, the schema, caches) lives as long as the process: out of
            # the collector's sight, full collections only walk what requests make, not all of it.
            gc.collect()
            gc.freeze()
            try:
                async with background_tasks(keys, limiter, database, settings, listener):
                    yield
            finally:
                await database.dispose()
                if replica is not None:
                    await replica.dispose()
                if tracing is not None:
                    await asyncio.to_thread(tracing.stop)  # sends what is left: a network round trip
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    graphql = SessionGraphQL(
        create_schema(
            settings.limits,
            introspection=settings.introspection,
            fast_execution=settings.fast_execution,
            operation_spans=tracing.extension if tracing is not None else None,
        ),
        graphql_ide="graphiql" if settings.graphiql else None,
        limits=settings.limits,
        log_format=settings.log_format,
        with_metrics=settings.metrics.enabled,
        # Subscriptions: graphql-transport-ws, and the legacy graphql-ws with its keep-alive
        # messages (graphql-transport-ws has the client ping; uvicorn pings both every 20 s);
        # over HTTP, graphql-sse's distinct connections (a POST asking for text/event-stream).
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
        keep_alive=True,
        keep_alive_interval=15,
        connection_init_wait_timeout=timedelta(seconds=settings.live.init_timeout_seconds),
        max_subscriptions_per_connection=settings.live.per_connection,
        # Same-origin handshakes (GraphiQL, the viewer) always pass; others as CORS allows them.
        allowed_origins=list(settings.cors_origins),
    )
    # The HTTP span first: it covers everything else the request meets.
    middleware = [tracing.middleware()] if tracing is not None else []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    TENANT_HEADER,
                    REQUEST_ID_HEADER,
                    READ_FROM_HEADER,
                ],
                expose_headers=[REQUEST_ID_HEADER, "retry-after"],
                max_age=600,
            )
        )
    return Starlette(
        routes=[
            Route("/", viewer_page(graphiql=settings.graphiql) if settings.viewer else graphiql_home),
            Route("/health", health),
            Route("/ready", ready),
            # Every method reaches strawberry, so a wrong one gets its 405 as a GraphQL error body.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            # GraphiQL's scripts and styles, so the page works offline; only while GraphiQL is on.
            *([graphiql_static_files()] if settings.graphiql else []),
            *([viewer_static_files()] if settings.viewer else []),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
