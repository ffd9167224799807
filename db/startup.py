"""What the server checks and does to a database before it serves, with each failure as one line."""

import asyncio
import socket

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from db.migrate import upgrade

CONNECT_TIMEOUT_SECONDS = 10
DEFAULT_PORT = 5432


class StartupError(Exception):
    """The server cannot start; the message is one line for the person starting it, with no secrets."""


def check_database(url: str) -> None:
    """Connect to ``url`` once, so a wrong DATABASE_URL stops the start instead of every request."""
    try:
        asyncio.run(_connect_once(url))
    except (OSError, DBAPIError) as error:
        raise StartupError(_connection_failure(url, error)) from None
    except Exception as error:
        # Whatever else the driver raises while connecting (a bad ?ssl= value, a TLS failure) is
        # also something wrong with DATABASE_URL or the server it names.
        reason = f"cannot connect to the database at {database_location(url)}: {_first_line(error)}"
        raise StartupError(_without_password(url, reason)) from None


def migrate(url: str) -> None:
    """Apply the migrations to ``url``, raising StartupError for a database that is away or says no."""
    try:
        upgrade(url)
    except DBAPIError as error:
        if error.connection_invalidated:
            reason = f"lost the connection to the database at {database_location(url)}"
        else:
            reason = "the database refused the migration"
        raise StartupError(_without_password(url, f"{reason}: {_server_message(error)}")) from None
    except OSError as error:
        raise StartupError(_connection_failure(url, error)) from None
    except CommandError as error:
        # Typically a database migrated by a newer release: its revision is unknown here.
        reason = f"cannot migrate the database at {database_location(url)}: {_first_line(error)}"
        raise StartupError(_without_password(url, reason)) from None


def database_location(url: str) -> str:
    """``host:port/database`` of ``url``, never its password; a socket directory stands for the host."""
    parts = make_url(url)
    host = parts.host or parts.query.get("host") or "localhost"
    if not isinstance(host, str):  # repeated ?host= parameters: asyncpg tries each
        host = ",".join(host)
    return f"{host}:{parts.port or DEFAULT_PORT}/{parts.database or parts.username or ''}"


async def _connect_once(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS})
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def _connection_failure(url: str, error: OSError | DBAPIError) -> str:
    where = database_location(url)
    if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None):
        # The server answered, and said no: a wrong role, password or database name.
        reason = f"the database at {where} refused the connection: {_server_message(error)}"
    elif isinstance(error, DBAPIError):
        reason = f"cannot connect to the database at {where}: {_server_message(error)}"
    else:
        reason = f"cannot reach the database at {where}: {_network_reason(error)}"
    return _without_password(url, reason)


def _network_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, FileNotFoundError):
        return "no such socket"
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS} seconds"
    reason = error.strerror or str(error) or type(error).__name__
    return reason[:1].lower() + reason[1:]


def _server_message(error: DBAPIError) -> str:
    # The driver's error carries PostgreSQL's message alone; SQLAlchemy's adds the statement.
    if error.orig is not None and error.orig.args:
        return _first_line(error.orig.args[0])
    return _first_line(error.orig or error)


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _without_password(url: str, message: str) -> str:
    password = make_url(url).password
    return message.replace(password, "***") if password else message
