"""All of the server's settings, in one typed object read from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from db.embedded import default_data_dir

ASYNC_SCHEMES = ("postgresql+asyncpg://",)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
PLAIN_SCHEMES = ("postgresql://", "postgres://")


class SettingsError(ValueError):
    """A setting from the environment or the command line has a value the server cannot use."""


def normalize_database_url(url: str) -> str:
    """Accept the libpq spellings people paste (``postgres://``, ``?sslmode=``) for the asyncpg driver."""
    for scheme in ASYNC_SCHEMES + PLAIN_SCHEMES:
        if url.startswith(scheme):
            return _libpq_options_for_asyncpg("postgresql+asyncpg://" + url[len(scheme) :])
    raise SettingsError("DATABASE_URL must start with postgresql://, postgres:// or postgresql+asyncpg://")


def _libpq_options_for_asyncpg(url: str) -> str:
    parts = urlsplit(url)
    if "sslmode" not in parts.query:
        return url
    # asyncpg takes libpq's sslmode values under the name ssl.
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _log_level(environ: Mapping[str, str], name: str) -> str:
    raw = (environ.get(name) or "info").strip().lower()
    if raw not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    return raw


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


@dataclass(frozen=True)
class Settings:
    """``database_url`` None means: start the embedded PostgreSQL in ``data_dir``."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    pool_size: int = 10
    max_overflow: int = 20
    graphiql: bool = True
    # Embedded databases are migrated on start; a shared database is migrated by a deploy step
    # (`session-graphql migrate`) unless this is set.
    migrate_on_start: bool = False
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        env = os.environ if environ is None else environ
        url = env.get("DATABASE_URL") or None
        settings = cls(
            database_url=normalize_database_url(url) if url else None,
            data_dir=Path(env["SESSION_GRAPHQL_DATA_DIR"])
            if env.get("SESSION_GRAPHQL_DATA_DIR")
            else default_data_dir(),
            host=env.get("SESSION_GRAPHQL_HOST") or "127.0.0.1",
            port=_int(env, "SESSION_GRAPHQL_PORT", 8000, 1, 65535),
            pool_size=_int(env, "SESSION_GRAPHQL_POOL_SIZE", 10, 1, 1000),
            max_overflow=_int(env, "SESSION_GRAPHQL_MAX_OVERFLOW", 20, 0, 1000),
            graphiql=_bool(env, "SESSION_GRAPHQL_GRAPHIQL", True),
            migrate_on_start=_bool(env, "SESSION_GRAPHQL_MIGRATE_ON_START", False),
            log_level=_log_level(env, "SESSION_GRAPHQL_LOG_LEVEL"),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
