"""``session-graphql token create | list | revoke``: API keys, straight in the server's database.

They need no running server and no credentials, only what ``serve`` would use: DATABASE_URL, or
the embedded database (started, and made if new, for the command). Every replica picks a change
up within its key refresh interval.
"""

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from db.control import api_keys
from db.engine import Database, create_engine
from db.errors import StoreError
from db.records import Actor, ApiKeyRecord
from db.startup import StartupError, database_location
from graphql_api.auth.api_keys import issue_key
from graphql_api.auth.identity import Role, check_tenant

T = TypeVar("T")
UNDEFINED_TABLE = "42P01"


def cli_actor() -> Actor:
    """Who the audit log says made a change from the command line: the OS user and host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(name=f"cli:{user}@{socket.gethostname()}", role="admin")


def run_on(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """``work`` on a short-lived pool; database failures become one-line ``StartupError``s."""

    async def run() -> T:
        database = Database(create_engine(url, pool_size=1, max_overflow=0))
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except StoreError as error:
        raise StartupError(str(error)) from None
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == UNDEFINED_TABLE:
            raise StartupError(
                f"the database at {database_location(url)} is not migrated: run `session-graphql migrate`"
            ) from None
        raise StartupError(f"the database at {database_location(url)} failed: {error.orig}") from None
    except OSError as error:
        raise StartupError(f"cannot reach the database at {database_location(url)}: {error}") from None


def _checked_tenant(tenant: str | None) -> str | None:
    if tenant is None:
        return None
    try:
        return check_tenant(tenant)
    except ValueError as error:
        raise StartupError(str(error)) from None


def create(url: str, role: str, tenant: str | None, label: str | None) -> list[str]:
    """Makes a key; the lines to print, the key alone on the last."""
    tenant = _checked_tenant(tenant)

    async def make(database: Database) -> tuple[str, ApiKeyRecord]:
        try:
            made, record = await issue_key(
                database.run_in_transaction, role=Role(role), tenant=tenant, label=label, actor=cli_actor()
            )
        except ValueError as error:
            raise StartupError(str(error)) from None
        return made.token, record

    token, record = run_on(url, make)
    scope = f"tenant {record.tenant!r}" if record.tenant else "every tenant (no tenant bound)"
    return [
        f"session-graphql: made {record.role} key {record.label!r} for {scope}",
        "session-graphql: the key is shown this once; only its hash is stored",
        token,
    ]


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def listing(url: str, tenant: str | None, include_revoked: bool) -> list[str]:
    """A table of keys: label, role, tenant, creation, last use (and revocation with --all)."""
    tenant = _checked_tenant(tenant)
    records = run_on(
        url,
        lambda database: database.run(
            lambda conn: api_keys.list_keys(conn, tenant=tenant, include_revoked=include_revoked)
        ),
    )
    header = ["LABEL", "ROLE", "TENANT", "CREATED", "LAST USED"] + (["REVOKED"] if include_revoked else [])
    rows = [
        [r.label, r.role, r.tenant or "*", _when(r.created_at), _when(r.last_used_at)]
        + ([_when(r.revoked_at)] if include_revoked else [])
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def revoke(url: str, label: str, tenant: str | None) -> list[str]:
    tenant = _checked_tenant(tenant)
    actor = cli_actor()
    record = run_on(
        url,
        lambda database: database.run_in_transaction(
            lambda conn: api_keys.revoke_key(conn, label=label, tenant=tenant, actor=actor)
        ),
    )
    scope = f"tenant {record.tenant!r}" if record.tenant else "no tenant"
    return [
        f"session-graphql: revoked {record.role} key {record.label!r} of {scope}; replicas refuse it soon"
    ]


async def any_key_made(database: Database) -> bool:
    return bool(await database.run(api_keys.load_keys))
