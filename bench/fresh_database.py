"""A new, migrated database for one benchmark run.

Without ``DATABASE_URL``: an embedded PostgreSQL (``db.embedded``) in a temporary data directory,
as ``python -m bench`` runs it. With it: a new database created next to the one it names (the role
needs CREATEDB), dropped after the run, so a run never measures or changes existing data.
"""

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db.embedded import start_embedded_postgres
from db.migrate import upgrade

SCHEMES = ("postgresql+asyncpg://", "postgresql://", "postgres://")


class DatabaseUnavailableError(Exception):
    """The benchmark cannot have a database of its own; the message says why, in one line."""


@dataclass(frozen=True)
class Database:
    url: str
    """``postgresql+asyncpg://``, as the server and SQLAlchemy take it."""
    where: str
    """Where it runs, for the report's header."""

    @property
    def libpq_url(self) -> str:
        """``postgresql://``, as asyncpg and node-postgres take it."""
        return "postgresql://" + self.url.removeprefix("postgresql+asyncpg://")


def _plain(url: str) -> str:
    for scheme in SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme) :]
    raise DatabaseUnavailableError(
        "DATABASE_URL must start with postgresql://, postgres:// or postgresql+asyncpg://"
    )


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _run(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_database(workdir: Path) -> Iterator[Database]:
    """Yields a migrated database nobody else uses; removes it afterwards."""
    given = os.environ.get("DATABASE_URL")
    if not given:
        embedded = start_embedded_postgres(workdir / "pgdata")
        try:
            upgrade(embedded.url)
            yield Database(embedded.url, f"embedded PostgreSQL in {embedded.data_dir}")
        finally:
            embedded.stop()
        return
    server = _plain(given)
    name = f"sgq_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_run(server, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        raise DatabaseUnavailableError(
            f"cannot create a database for the benchmark at DATABASE_URL: {error}"
        ) from None
    try:
        url = _with_database(server, name)
        upgrade("postgresql+asyncpg://" + url.removeprefix("postgresql://"))
        yield Database(
            "postgresql+asyncpg://" + url.removeprefix("postgresql://"),
            f"new database {name} on DATABASE_URL's server",
        )
    finally:
        asyncio.run(_run(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
