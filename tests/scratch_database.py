"""Private, empty databases on the test PostgreSQL server, for tests that must not see other tests' rows
(migrations from nothing, global listings)."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine


async def _run_outside_transaction(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new empty database next to ``server_url``'s, dropped afterwards; yields its URL."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_run_outside_transaction(server_url, f'CREATE DATABASE "{name}"'))
    except DBAPIError as error:
        pytest.skip(f"cannot create a scratch database on the test server: {error.orig}")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_run_outside_transaction(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
