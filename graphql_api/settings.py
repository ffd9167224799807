"""All of the server's settings, in one typed object read from the environment."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from db.embedded import default_data_dir

ASYNC_SCHEMES = ("postgresql+asyncpg://",)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
PLAIN_SCHEMES = ("postgresql://", "postgres://")


class SettingsError(ValueError):
    """A setting from the environment or the command line has a value the server cannot use."""


def normalize_database_url(url: str, name: str = "DATABASE_URL") -> str:
    """Accept the libpq spellings people paste (``postgres://``, ``?sslmode=``) for the asyncpg driver."""
    for scheme in ASYNC_SCHEMES + PLAIN_SCHEMES:
        if url.startswith(scheme):
            return _libpq_options_for_asyncpg("postgresql+asyncpg://" + url[len(scheme) :])
    raise SettingsError(f"{name} must start with postgresql://, postgres:// or postgresql+asyncpg://")


def _libpq_options_for_asyncpg(url: str) -> str:
    parts = urlsplit(url)
    if "sslmode" not in parts.query:
        return url
    # asyncpg takes libpq's sslmode values under the name ssl.
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


N = TypeVar("N", int, float)


def _bounded(environ: Mapping[str, str], name: str, default: N, low: N, high: N, kind: type[N]) -> N:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name} must be {noun}, not {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {raw}")
    return value


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _bounded(environ, name, default, low, high, int)


MAX_WORKERS = 256


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: those it may run on, fewer under a container's CPU quota.

    ``docker run --cpus 2`` on a 64-core host leaves all 64 in the affinity mask and sets the
    quota (cgroup v2's ``cpu.max``, "quota period" or "max period"), so both are read.
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return count
    if quota == "max":
        return count
    return max(1, min(count, math.ceil(int(quota) / int(period))))


def workers_value(raw: str, name: str) -> int:
    """``SESSION_GRAPHQL_WORKERS`` and ``serve --workers``: a number of processes, or ``auto`` for one
    per available CPU (``available_cpus``)."""
    if raw.strip().lower() == "auto":
        return min(available_cpus(), MAX_WORKERS)
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise SettingsError(
            f"{name} must be a number of processes from 1 to {MAX_WORKERS}, or auto, not {raw!r}"
        )
    return int(raw)


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _bounded(environ, name, default, low, high, float)


def _log_level(environ: Mapping[str, str], name: str) -> str:
    raw = (environ.get(name) or "info").strip().lower()
    if raw not in LOG_LEVELS:
        raise SettingsError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    return raw


LOG_FORMATS = ("text", "json")


def _log_format(environ: Mapping[str, str], name: str) -> str:
    raw = (environ.get(name) or "text").strip().lower()
    if raw not in LOG_FORMATS:
        raise SettingsError(f"{name} must be text or json, not {raw!r}")
    return raw


def _text(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


def _words(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks around and between the commas are ignored."""
    return tuple(word.strip() for word in environ.get(name, "").split(",") if word.strip())


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed [IPv6] bracket
        return False


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
class JwtSettings:
    """Bearer JWTs from an identity provider; off unless ``issuer`` is set.

    The signature is checked against ``jwks_url`` (fetched and cached) or ``public_key`` (PEM),
    ``iss`` must equal ``issuer`` and ``aud`` contain ``audience``. The role is read from
    ``role_claim`` (a string or a list of strings; the highest known role wins) and the tenant
    from ``tenant_claim`` (absent: the default tenant; ``*``: every tenant). A claim name is
    looked up whole first, so namespaced claims such as ``https://example.com/role`` work, then
    as a dotted path into nested objects (Keycloak's ``realm_access.roles``).
    """

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    public_key: str | None = None
    role_claim: str = "role"
    tenant_claim: str = "tenant"
    algorithms: tuple[str, ...] = (
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    )
    leeway_seconds: float = 30.0

    def __post_init__(self) -> None:
        # Settings made in code get the same refusals as the environment's: without this, an
        # audience and JWKS URL without an issuer would leave JWTs off and the server open.
        self.check()

    @property
    def enabled(self) -> bool:
        return self.issuer is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "JwtSettings":
        public_key = _text(env, "SESSION_GRAPHQL_JWT_PUBLIC_KEY")
        key_file = _text(env, "SESSION_GRAPHQL_JWT_PUBLIC_KEY_FILE")
        if key_file is not None:
            if public_key is not None:
                raise SettingsError(
                    "set SESSION_GRAPHQL_JWT_PUBLIC_KEY or SESSION_GRAPHQL_JWT_PUBLIC_KEY_FILE, not both"
                )
            try:
                public_key = Path(key_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise SettingsError(f"SESSION_GRAPHQL_JWT_PUBLIC_KEY_FILE cannot be read: {error}") from None
        return cls(
            issuer=_text(env, "SESSION_GRAPHQL_JWT_ISSUER"),
            audience=_text(env, "SESSION_GRAPHQL_JWT_AUDIENCE"),
            jwks_url=_text(env, "SESSION_GRAPHQL_JWT_JWKS_URL"),
            public_key=public_key,
            role_claim=_text(env, "SESSION_GRAPHQL_JWT_ROLE_CLAIM") or "role",
            tenant_claim=_text(env, "SESSION_GRAPHQL_JWT_TENANT_CLAIM") or "tenant",
            algorithms=_words(env, "SESSION_GRAPHQL_JWT_ALGORITHMS") or cls.algorithms,
            leeway_seconds=_number(env, "SESSION_GRAPHQL_JWT_LEEWAY_SECONDS", 30.0, 0, 600),
        )

    def check(self) -> None:
        """Refuses a half-configured verifier: JWT settings without an issuer, or no key to check with."""
        if self.issuer is None:
            if self.audience or self.jwks_url or self.public_key:
                raise SettingsError("JWT settings need SESSION_GRAPHQL_JWT_ISSUER as well")
            return
        if not self.audience:
            raise SettingsError("SESSION_GRAPHQL_JWT_AUDIENCE must be set with SESSION_GRAPHQL_JWT_ISSUER")
        if (self.jwks_url is None) == (self.public_key is None):
            raise SettingsError(
                "set exactly one of SESSION_GRAPHQL_JWT_JWKS_URL and SESSION_GRAPHQL_JWT_PUBLIC_KEY(_FILE)"
            )
        if self.jwks_url is not None and not _is_http_url(self.jwks_url):
            raise SettingsError(f"SESSION_GRAPHQL_JWT_JWKS_URL must be an http(s) URL, not {self.jwks_url!r}")
        unknown = [name for name in self.algorithms if name not in ASYMMETRIC_ALGORITHMS]
        if unknown:
            # A shared-secret algorithm (HS256) would let anyone holding the public key sign tokens.
            raise SettingsError(
                "SESSION_GRAPHQL_JWT_ALGORITHMS may only name public-key algorithms, "
                f"not {', '.join(unknown)}"
            )


ASYMMETRIC_ALGORITHMS = frozenset(JwtSettings.algorithms)


@dataclass(frozen=True)
class Limits:
    """What one caller or one request may ask of the server; each has its own error code."""

    rate_per_second: float = 50.0
    """Requests a key (or JWT subject) may make per second, across all replicas; 0 turns it off."""
    rate_burst: int = 100
    """Requests a key may make at once after being idle."""
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_seconds: float = 30.0
    """How long a request's body may take to arrive; slower clients get HTTP 408."""
    max_document_bytes: int = 100_000
    max_tokens: int = 10_000
    max_depth: int = 15
    max_aliases: int = 50
    max_cost: int = 100_000
    """Rows a document may ask for, estimated from its page sizes before it runs."""
    max_response_bytes: int = 32 * 1024 * 1024
    """Bytes one answer may hold, every alias counted: twice a restore of 10,000 messages of 1 KB,
    or a 10 MiB object in base64."""
    max_page_size: int = 1000
    max_list_size: int = 10_000
    """Most messages one ``messages`` list returns (its ``limit``, or all of them when unlimited)."""
    assumed_nested_list: int = 20
    """How many agents (multi-agents, checkpoints) the cost estimate counts for a session it cannot
    look at, one of a listing; a session looked up by id counts what it holds. A listing meeting
    more is stopped while it runs, by the rows it may load."""
    max_stats_keys: int = 50
    """Keys (lines) one ``conversationStats`` grouping may have; the estimate counts this many."""
    max_stats_buckets: int = 5000
    """Buckets all ``conversationStats`` fields of one document may ask for together."""
    search_candidates: int = 10_000
    """Matches ``searchMessages`` ranks best first: the newest this many the caller's tenant and
    filter keep (all of them when fewer match); 0 ranks every match, at a cost growing with them."""
    max_heavy_requests: int = 8
    """Heavy requests (statistics, search, storage objects, or an estimated cost of at least
    ``graphql_api.guards.cost.HEAVY_COST`` rows) one caller may have running at once on one replica."""
    heavy_wait_seconds: float = 5.0
    """How long a heavy request waits for one of its caller's slots before ``RATE_LIMITED``."""
    max_batch: int = 1000
    """Messages per ``appendMessages``."""
    max_message_bytes: int = 8 * 1024 * 1024
    max_object_bytes: int = 10 * 1024 * 1024
    """Bytes of one storage object (a Strands snapshot holds the whole conversation)."""
    max_json_depth: int = 64
    """Nesting of a stored JSON document; well under the ~490 levels Strands can read back."""
    max_json_nodes: int = 1_000_000
    """Values (objects, lists, strings, numbers...) in the JSON of one request's variables: each
    costs the server work on its event loop before it can be refused for anything else."""
    max_content_blocks: int = 10_000
    """Content blocks of one message (Strands writes a handful; each is read for search and stats)."""
    statement_timeout_ms: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Limits":
        d = cls()
        return cls(
            rate_per_second=_number(env, "SESSION_GRAPHQL_RATE_LIMIT", d.rate_per_second, 0, 1_000_000),
            rate_burst=_int(env, "SESSION_GRAPHQL_RATE_BURST", d.rate_burst, 1, 10_000_000),
            max_body_bytes=_int(env, "SESSION_GRAPHQL_MAX_BODY_BYTES", d.max_body_bytes, 1024, 2**31),
            body_timeout_seconds=_number(
                env, "SESSION_GRAPHQL_BODY_TIMEOUT_SECONDS", d.body_timeout_seconds, 0.1, 3600
            ),
            max_document_bytes=_int(
                env, "SESSION_GRAPHQL_MAX_DOCUMENT_BYTES", d.max_document_bytes, 100, 2**31
            ),
            max_tokens=_int(env, "SESSION_GRAPHQL_MAX_TOKENS", d.max_tokens, 10, 10_000_000),
            max_depth=_int(env, "SESSION_GRAPHQL_MAX_DEPTH", d.max_depth, 1, 1000),
            max_aliases=_int(env, "SESSION_GRAPHQL_MAX_ALIASES", d.max_aliases, 0, 1_000_000),
            max_cost=_int(env, "SESSION_GRAPHQL_MAX_COST", d.max_cost, 1, 10**12),
            max_response_bytes=_int(
                env, "SESSION_GRAPHQL_MAX_RESPONSE_BYTES", d.max_response_bytes, 1024, 2**40
            ),
            max_page_size=_int(env, "SESSION_GRAPHQL_MAX_PAGE_SIZE", d.max_page_size, 1, 1_000_000),
            max_list_size=_int(env, "SESSION_GRAPHQL_MAX_LIST_SIZE", d.max_list_size, 1, 10_000_000),
            assumed_nested_list=_int(
                env, "SESSION_GRAPHQL_ASSUMED_NESTED_LIST", d.assumed_nested_list, 1, 1_000_000
            ),
            max_stats_keys=_int(env, "SESSION_GRAPHQL_MAX_STATS_KEYS", d.max_stats_keys, 1, 1_000_000),
            max_stats_buckets=_int(
                env, "SESSION_GRAPHQL_MAX_STATS_BUCKETS", d.max_stats_buckets, 1, 10_000_000
            ),
            search_candidates=_int(
                env, "SESSION_GRAPHQL_SEARCH_CANDIDATES", d.search_candidates, 0, 10_000_000
            ),
            max_heavy_requests=_int(
                env, "SESSION_GRAPHQL_MAX_HEAVY_REQUESTS", d.max_heavy_requests, 0, 1_000_000
            ),
            heavy_wait_seconds=_number(
                env, "SESSION_GRAPHQL_HEAVY_WAIT_SECONDS", d.heavy_wait_seconds, 0, 600
            ),
            max_batch=_int(env, "SESSION_GRAPHQL_MAX_BATCH", d.max_batch, 1, 1_000_000),
            max_message_bytes=_int(env, "SESSION_GRAPHQL_MAX_MESSAGE_BYTES", d.max_message_bytes, 100, 2**31),
            max_object_bytes=_int(env, "SESSION_GRAPHQL_MAX_OBJECT_BYTES", d.max_object_bytes, 100, 2**31),
            max_json_depth=_int(env, "SESSION_GRAPHQL_MAX_JSON_DEPTH", d.max_json_depth, 2, 400),
            max_json_nodes=_int(env, "SESSION_GRAPHQL_MAX_JSON_NODES", d.max_json_nodes, 100, 10**9),
            max_content_blocks=_int(
                env, "SESSION_GRAPHQL_MAX_CONTENT_BLOCKS", d.max_content_blocks, 1, 10**9
            ),
            statement_timeout_ms=_int(
                env, "SESSION_GRAPHQL_STATEMENT_TIMEOUT_MS", d.statement_timeout_ms, 0, 24 * 3600 * 1000
            ),
        )


MOST_ROLLUP_LABELS = 8
"""Each kept label multiplies the rollups' rows by the number of its values in use."""


@dataclass(frozen=True)
class RollupSettings:
    """Statistics aggregated ahead of time (db.analytics.rollups)."""

    label_keys: tuple[str, ...] = ()
    """Label keys whose values the rollups keep (SESSION_GRAPHQL_ROLLUP_LABELS, comma-separated):
    statistics filtered or grouped by them are served from the rollups. Keep keys with few values
    (team, environment), not one value per user. A change rebuilds the rollups at the next start."""
    fold_seconds: float = 1.0
    """How often the fold looks for queued buckets (SESSION_GRAPHQL_ROLLUP_FOLD_SECONDS); 0: never
    (answers stay exact, read from rows, but dashboards get slower as the queue grows)."""

    def __post_init__(self) -> None:
        if len(self.label_keys) > MOST_ROLLUP_LABELS:
            raise SettingsError(
                f"SESSION_GRAPHQL_ROLLUP_LABELS names {len(self.label_keys)} keys, "
                f"over the {MOST_ROLLUP_LABELS} it may name"
            )
        for key in self.label_keys:
            if len(key) > 64:
                raise SettingsError(f"SESSION_GRAPHQL_ROLLUP_LABELS: {key[:20]!r}... is over 64 characters")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RollupSettings":
        return cls(
            label_keys=tuple(dict.fromkeys(_words(env, "SESSION_GRAPHQL_ROLLUP_LABELS"))),
            fold_seconds=_number(env, "SESSION_GRAPHQL_ROLLUP_FOLD_SECONDS", 1.0, 0, 3600),
        )


MOST_KEEP_DAYS = 36_500
"""A hundred years: a longer rule is a typo, not a policy."""


@dataclass(frozen=True)
class RetentionSettings:
    """Deleting sessions idle longer than a rule (db.control.retention): tenants' own rules,
    set by admins, else ``default_keep_days``."""

    default_keep_days: int | None = None
    """Sessions whose last activity is older than this many days are deleted
    (SESSION_GRAPHQL_RETENTION_DAYS); None (unset): kept, unless their tenant has a rule."""
    interval_seconds: float = 60.0
    """How often one replica looks for expired sessions (SESSION_GRAPHQL_RETENTION_INTERVAL_SECONDS);
    0: never (``session-graphql retention`` still runs a pass)."""
    batch_size: int = 100
    """Sessions deleted per transaction (SESSION_GRAPHQL_RETENTION_BATCH), by retention and by
    ``deleteSessions``: small, so agents' writes never wait long."""

    def __post_init__(self) -> None:
        if self.default_keep_days is not None and not 1 <= self.default_keep_days <= MOST_KEEP_DAYS:
            raise SettingsError(
                f"SESSION_GRAPHQL_RETENTION_DAYS must be between 1 and {MOST_KEEP_DAYS}, "
                f"not {self.default_keep_days}"
            )
        if not 1 <= self.batch_size <= 10_000:
            raise SettingsError(
                f"SESSION_GRAPHQL_RETENTION_BATCH must be between 1 and 10000, not {self.batch_size}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RetentionSettings":
        d = cls()
        days = env.get("SESSION_GRAPHQL_RETENTION_DAYS", "").strip()
        return cls(
            default_keep_days=_int(env, "SESSION_GRAPHQL_RETENTION_DAYS", 0, 1, MOST_KEEP_DAYS)
            if days
            else None,
            interval_seconds=_number(
                env, "SESSION_GRAPHQL_RETENTION_INTERVAL_SECONDS", d.interval_seconds, 0, 86_400
            ),
            batch_size=_int(env, "SESSION_GRAPHQL_RETENTION_BATCH", d.batch_size, 1, 10_000),
        )


REPLICA_FALLBACKS = ("primary", "none")


@dataclass(frozen=True)
class ReplicaSettings:
    """A PostgreSQL read replica (a streaming standby) for dashboards' reads
    (``graphql_api.read_routing``); off unless ``url`` is set. Agents' reads and every write stay on
    the primary."""

    url: str | None = None
    fallback: str = "primary"
    """While the read replica is away, dashboards' reads go to the primary (``primary``) or are answered
    ``SERVICE_UNAVAILABLE`` (``none``, to keep their load off the primary)."""
    retry_seconds: float = 5.0
    """How long a read replica that failed is left aside before a read tries it again."""

    def __post_init__(self) -> None:
        if self.fallback not in REPLICA_FALLBACKS:
            raise SettingsError(
                f"SESSION_GRAPHQL_READ_REPLICA_FALLBACK must be one of {', '.join(REPLICA_FALLBACKS)}, "
                f"not {self.fallback!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ReplicaSettings":
        url = _text(env, "DATABASE_READ_URL")
        d = cls()
        return cls(
            url=normalize_database_url(url, "DATABASE_READ_URL") if url else None,
            fallback=(_text(env, "SESSION_GRAPHQL_READ_REPLICA_FALLBACK") or d.fallback).lower(),
            retry_seconds=_number(
                env, "SESSION_GRAPHQL_READ_REPLICA_RETRY_SECONDS", d.retry_seconds, 0, 3600
            ),
        )


SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
"""The values of ``OTEL_TRACES_SAMPLER`` the OpenTelemetry SDK knows; it reads the variable itself."""
OTLP_PROTOCOL = "http/protobuf"


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing (``graphql_api.tracing``), off unless an OTLP endpoint is configured:
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, and neither
    ``OTEL_SDK_DISABLED=true`` nor ``OTEL_TRACES_EXPORTER=none``. The SDK reads the other ``OTEL_*``
    variables itself (sampler, service name, resource, batching, headers); only values it would
    quietly replace by its defaults are refused here."""

    enabled: bool = False
    endpoint: str | None = None
    """Where spans go, for the start-up line; the exporter reads it from the environment itself."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "TracingSettings":
        endpoint = _text(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _text(
            env, "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        exporter = (_text(env, "OTEL_TRACES_EXPORTER") or "otlp").lower()
        if _bool(env, "OTEL_SDK_DISABLED", False) or endpoint is None or exporter == "none":
            return cls()
        if exporter != "otlp":
            raise SettingsError(f"OTEL_TRACES_EXPORTER must be otlp or none, not {exporter!r}")
        protocol = _text(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _text(
            env, "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        if protocol not in (None, OTLP_PROTOCOL):
            raise SettingsError(
                f"the server sends spans over OTLP/HTTP ({OTLP_PROTOCOL}, usually port 4318), "
                f"not {protocol}: unset OTEL_EXPORTER_OTLP_PROTOCOL or set it to http/protobuf"
            )
        if not _is_http_url(endpoint):
            raise SettingsError(
                f"the OTLP endpoint must be an http(s) URL such as http://localhost:4318, not {endpoint!r}"
            )
        sampler = (_text(env, "OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
        if sampler not in SAMPLERS:
            raise SettingsError(f"OTEL_TRACES_SAMPLER must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        if sampler.endswith("traceidratio"):
            _number(env, "OTEL_TRACES_SAMPLER_ARG", 1.0, 0, 1)
        return cls(enabled=True, endpoint=endpoint)


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics on ``/metrics`` at an address of their own (``graphql_api.metrics``); off
    unless ``port`` is set. No credentials are asked there: the address is the protection."""

    port: int | None = None
    host: str = "127.0.0.1"
    refresh_seconds: float = 15.0
    """How often the metrics read from the database (the rollups' backlog, stored rows per tenant)
    are read again, by each server process."""

    @property
    def enabled(self) -> bool:
        return self.port is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MetricsSettings":
        port = _text(env, "SESSION_GRAPHQL_METRICS_PORT")
        return cls(
            port=None if port is None else _int(env, "SESSION_GRAPHQL_METRICS_PORT", 0, 1, 65535),
            host=_text(env, "SESSION_GRAPHQL_METRICS_HOST") or "127.0.0.1",
            refresh_seconds=_number(env, "SESSION_GRAPHQL_METRICS_REFRESH_SECONDS", 15.0, 1, 3600),
        )


@dataclass(frozen=True)
class LiveSettings:
    """GraphQL subscriptions (``graphql_api.live``): the listening connection and the limits."""

    listen_url: str | None = None
    """Where the one LISTEN connection per process goes (SESSION_GRAPHQL_LISTEN_URL); None: the
    database's URL. Set it to the server itself when DATABASE_URL goes through pgbouncer in
    transaction pooling, which breaks LISTEN."""
    per_connection: int = 100
    """Subscriptions one websocket may hold (SESSION_GRAPHQL_SUBSCRIPTIONS_PER_CONNECTION)."""
    per_key: int = 1000
    """Subscriptions one API key (or JWT subject) may hold on one process
    (SESSION_GRAPHQL_SUBSCRIPTIONS_PER_KEY)."""
    buffer_events: int = 1000
    """Events a subscriber may have waiting to be sent (SESSION_GRAPHQL_SUBSCRIBER_BUFFER)."""
    slow_seconds: float = 5.0
    """How long a subscriber's buffer may stay full before it is closed as too slow
    (SESSION_GRAPHQL_SUBSCRIBER_SLOW_SECONDS)."""
    init_timeout_seconds: float = 10.0
    """How long a websocket may take to send ``connection_init`` (SESSION_GRAPHQL_WS_INIT_TIMEOUT_SECONDS)."""
    probe_seconds: float = 5.0
    """How often the listening connection is probed, a dead peer being otherwise unnoticed
    (SESSION_GRAPHQL_LISTEN_PROBE_SECONDS)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "LiveSettings":
        url = _text(env, "SESSION_GRAPHQL_LISTEN_URL")
        d = cls()
        return cls(
            listen_url=normalize_database_url(url, "SESSION_GRAPHQL_LISTEN_URL") if url else None,
            per_connection=_int(
                env, "SESSION_GRAPHQL_SUBSCRIPTIONS_PER_CONNECTION", d.per_connection, 1, 10_000
            ),
            per_key=_int(env, "SESSION_GRAPHQL_SUBSCRIPTIONS_PER_KEY", d.per_key, 1, 1_000_000),
            buffer_events=_int(env, "SESSION_GRAPHQL_SUBSCRIBER_BUFFER", d.buffer_events, 1, 1_000_000),
            slow_seconds=_number(env, "SESSION_GRAPHQL_SUBSCRIBER_SLOW_SECONDS", d.slow_seconds, 0.1, 3600),
            init_timeout_seconds=_number(
                env, "SESSION_GRAPHQL_WS_INIT_TIMEOUT_SECONDS", d.init_timeout_seconds, 0.1, 3600
            ),
            probe_seconds=_number(env, "SESSION_GRAPHQL_LISTEN_PROBE_SECONDS", d.probe_seconds, 0.1, 3600),
        )


@dataclass(frozen=True)
class Settings:
    """``database_url`` None means: start the embedded PostgreSQL in ``data_dir``."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    """Server processes sharing the port: the API keeps no state of its own, so up to one per core."""
    pool_size: int = 10
    max_overflow: int = 20
    graphiql: bool = True
    viewer: bool = True
    """The conversation viewer at ``/``; off, ``/`` redirects to ``/graphql``."""
    fast_execution: bool = True
    """graphql-core's executor with this server's shortcuts (``graphql_api.execution``); off, the
    plain executor. Answers are the same byte for byte either way (tests/test_fast_paths.py)."""
    introspection: bool = True
    # Embedded databases are migrated on start; a shared database is migrated by a deploy step
    # (`session-graphql migrate`) unless this is set.
    migrate_on_start: bool = False
    log_level: str = "info"
    log_format: str = "text"
    """The request log's lines (graphql_api.request_log): ``text`` or ``json``."""
    insecure: bool = False
    """Allow running without credentials on an address other than loopback."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose pages may call the API from a browser (dashboards served elsewhere); * for any."""
    key_refresh_seconds: float = 2.0
    """How often each replica re-reads the API keys: a revoked key stops working within this time."""
    jwt: JwtSettings = field(default_factory=JwtSettings)
    limits: Limits = field(default_factory=Limits)
    rollups: RollupSettings = field(default_factory=RollupSettings)
    read_replica: ReplicaSettings = field(default_factory=ReplicaSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    def __post_init__(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"SESSION_GRAPHQL_LOG_FORMAT must be text or json, not {self.log_format!r}")
        if self.read_replica.url is not None and self.database_url is None:
            # The embedded database takes no replicas: dashboards would read another database
            # than the one agents write to.
            raise SettingsError("DATABASE_READ_URL needs DATABASE_URL: a replica streams from a primary")
        if self.metrics.port == self.port and self.metrics.host == self.host:
            raise SettingsError(f"the metrics port must differ from the API's port, {self.port}")

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
            workers=workers_value(env.get("SESSION_GRAPHQL_WORKERS") or "1", "SESSION_GRAPHQL_WORKERS"),
            pool_size=_int(env, "SESSION_GRAPHQL_POOL_SIZE", 10, 1, 1000),
            max_overflow=_int(env, "SESSION_GRAPHQL_MAX_OVERFLOW", 20, 0, 1000),
            graphiql=_bool(env, "SESSION_GRAPHQL_GRAPHIQL", True),
            viewer=_bool(env, "SESSION_GRAPHQL_VIEWER", True),
            fast_execution=_bool(env, "SESSION_GRAPHQL_FAST_EXECUTION", True),
            introspection=_bool(env, "SESSION_GRAPHQL_INTROSPECTION", True),
            migrate_on_start=_bool(env, "SESSION_GRAPHQL_MIGRATE_ON_START", False),
            log_level=_log_level(env, "SESSION_GRAPHQL_LOG_LEVEL"),
            log_format=_log_format(env, "SESSION_GRAPHQL_LOG_FORMAT"),
            insecure=_bool(env, "SESSION_GRAPHQL_INSECURE", False),
            cors_origins=_words(env, "SESSION_GRAPHQL_CORS_ORIGINS"),
            key_refresh_seconds=_number(env, "SESSION_GRAPHQL_KEY_REFRESH_SECONDS", 2.0, 0.1, 300),
            jwt=JwtSettings.from_env(env),
            limits=Limits.from_env(env),
            rollups=RollupSettings.from_env(env),
            read_replica=ReplicaSettings.from_env(env),
            metrics=MetricsSettings.from_env(env),
            retention=RetentionSettings.from_env(env),
            tracing=TracingSettings.from_env(env),
            live=LiveSettings.from_env(env),
        )
        # --metrics-port and --metrics-host set the nested settings' fields.
        metrics = {
            name: overrides.pop(f"metrics_{name}")
            for name in ("port", "host")
            if overrides.get(f"metrics_{name}") is not None
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if metrics:
            overrides["metrics"] = replace(settings.metrics, **metrics)
        return replace(settings, **overrides)
