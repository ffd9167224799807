"""A server that needs credentials, on a private database, with keys made as an operator makes them.

Keys close a server for everyone (an open server is one where no key was ever made), so secured
servers never share the suite's common database.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.engine import Database
from db.migrate import upgrade
from db.records import Actor
from graphql_api.auth.api_keys import issue_key
from graphql_api.auth.identity import Role
from graphql_api.settings import Settings
from tests.conftest import RunningServer
from tests.scratch_database import scratch_database

OPERATOR = Actor(name="test-operator", role="admin")


def make_key(database_url: str, role: str, tenant: str | None = None, label: str | None = None) -> str:
    """A new key, stored as ``session-graphql token create`` stores it; returns the key itself."""

    async def make() -> str:
        database = Database(create_async_engine(database_url, poolclass=NullPool))
        try:
            made, _ = await issue_key(
                database.run_in_transaction, role=Role(role), tenant=tenant, label=label, actor=OPERATOR
            )
        finally:
            await database.dispose()
        return made.token

    return asyncio.run(make())


class Secured:
    """A running secured server and a way to call it with any key."""

    def __init__(self, server: RunningServer, database_url: str) -> None:
        self.server = server
        self.database_url = database_url
        self.http = httpx.Client(base_url=server.base_url, timeout=30)

    def key(self, role: str, tenant: str | None = None, label: str | None = None) -> str:
        return make_key(self.database_url, role, tenant, label)

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        tenant: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        if tenant is not None:
            sent["X-Tenant"] = tenant
        return self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=sent)

    def graphql(self, query: str, variables: dict[str, Any] | None = None, **how: Any) -> dict[str, Any]:
        """The body of a request that HTTP accepted (200)."""
        response = self.post(query, variables, **how)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def secured_server(
    database_url: str, settings: Settings | None = None, *, admin_label: str = "bootstrap"
) -> Iterator[Secured]:
    """A server on a fresh database holding one tenantless admin key (labelled ``admin_label``)."""
    with scratch_database(database_url) as url:
        upgrade(url)
        make_key(url, "admin", label=admin_label)
        chosen = replace(settings or Settings(), database_url=url)
        server = RunningServer(chosen)
        server.start()
        secured = Secured(server, url)
        try:
            yield secured
        finally:
            secured.http.close()
            server.stop()
