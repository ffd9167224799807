"""Settings come from the environment; what the server cannot use is refused with a clear message."""

import inspect
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from db.embedded import default_data_dir
from db.notifications import plain_url
from graphql_api.settings import (
    LiveSettings,
    MetricsSettings,
    RetentionSettings,
    Settings,
    SettingsError,
    available_cpus,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://app:pw@db:5432/store", "postgresql+asyncpg://app:pw@db:5432/store"),
        ("postgresql://app:pw@db/store", "postgresql+asyncpg://app:pw@db/store"),
        ("postgresql+asyncpg://app@db/store", "postgresql+asyncpg://app@db/store"),
        (
            "postgresql://app@/store?host=/run/postgresql",
            "postgresql+asyncpg://app@/store?host=/run/postgresql",
        ),
    ],
)
def test_database_url_in_libpq_spelling_is_served_through_asyncpg(given: str, expected: str) -> None:
    assert Settings.from_env({"DATABASE_URL": given}).database_url == expected


def test_libpq_sslmode_in_a_pasted_url_becomes_an_option_asyncpg_accepts() -> None:
    url = Settings.from_env(
        {"DATABASE_URL": "postgres://app:pw@db.example.com/store?sslmode=require"}
    ).database_url
    assert url is not None

    _, connect_kwargs = create_async_engine(url).dialect.create_connect_args(make_url(url))

    assert set(connect_kwargs) <= set(inspect.signature(asyncpg.connect).parameters), connect_kwargs
    assert connect_kwargs.get("ssl") == "require"


@pytest.mark.parametrize(
    "url", ["mysql://app@db/store", "postgresql+psycopg://app@db/store", "db:5432/store"]
)
def test_database_url_of_another_database_or_driver_is_refused_by_name(url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL must start with postgresql://"):
        Settings.from_env({"DATABASE_URL": url})


def test_empty_environment_means_embedded_database_with_defaults() -> None:
    settings = Settings.from_env({"DATABASE_URL": ""})

    assert settings.database_url is None
    assert settings.data_dir == default_data_dir()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.graphiql is True
    assert settings.viewer is True
    assert settings.fast_execution is True
    assert settings.migrate_on_start is False


def test_every_setting_is_read_from_its_variable() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://app@db/store",
            "SESSION_GRAPHQL_DATA_DIR": "/srv/pgdata",
            "SESSION_GRAPHQL_HOST": "0.0.0.0",
            "SESSION_GRAPHQL_PORT": "9000",
            "SESSION_GRAPHQL_POOL_SIZE": "4",
            "SESSION_GRAPHQL_MAX_OVERFLOW": "0",
            "SESSION_GRAPHQL_GRAPHIQL": "off",
            "SESSION_GRAPHQL_VIEWER": "no",
            "SESSION_GRAPHQL_FAST_EXECUTION": "false",
            "SESSION_GRAPHQL_MIGRATE_ON_START": "YES",
            "SESSION_GRAPHQL_LOG_LEVEL": "warning",
        }
    )

    assert settings == Settings(
        database_url="postgresql+asyncpg://app@db/store",
        data_dir=Path("/srv/pgdata"),
        host="0.0.0.0",
        port=9000,
        pool_size=4,
        max_overflow=0,
        graphiql=False,
        viewer=False,
        fast_execution=False,
        migrate_on_start=True,
        log_level="warning",
    )


def test_command_line_options_win_over_the_environment_and_absent_ones_do_not() -> None:
    environ = {"SESSION_GRAPHQL_PORT": "9000", "SESSION_GRAPHQL_HOST": "0.0.0.0"}

    settings = Settings.from_env(environ, port=7000, host=None, data_dir=Path("/tmp/here"))

    assert (settings.port, settings.host, settings.data_dir) == (7000, "0.0.0.0", Path("/tmp/here"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_GRAPHQL_PORT", "eighty"),
        ("SESSION_GRAPHQL_POOL_SIZE", "1.5"),
        ("SESSION_GRAPHQL_MAX_OVERFLOW", "many"),
        ("SESSION_GRAPHQL_GRAPHIQL", "maybe"),
        ("SESSION_GRAPHQL_VIEWER", "sometimes"),
        ("SESSION_GRAPHQL_MIGRATE_ON_START", "2"),
        ("SESSION_GRAPHQL_WORKERS", "all"),
        ("SESSION_GRAPHQL_WORKERS", "0"),
        ("SESSION_GRAPHQL_WORKERS", "257"),
    ],
)
def test_malformed_value_is_refused_naming_the_variable_and_the_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})

    assert name in str(refused.value)
    assert repr(value) in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SESSION_GRAPHQL_PORT", "99999"), ("SESSION_GRAPHQL_PORT", "-1"), ("SESSION_GRAPHQL_POOL_SIZE", "-3")],
)
def test_number_out_of_range_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_unknown_log_level_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="SESSION_GRAPHQL_LOG_LEVEL"):
        Settings.from_env({"SESSION_GRAPHQL_LOG_LEVEL": "loud"})


def test_metrics_are_off_without_a_port_and_read_from_their_variables() -> None:
    assert Settings.from_env({}).metrics.enabled is False

    metrics = Settings.from_env(
        {
            "SESSION_GRAPHQL_METRICS_PORT": "9090",
            "SESSION_GRAPHQL_METRICS_HOST": "10.0.0.5",
            "SESSION_GRAPHQL_METRICS_REFRESH_SECONDS": "30",
        }
    ).metrics

    assert metrics == MetricsSettings(port=9090, host="10.0.0.5", refresh_seconds=30.0)
    assert metrics.enabled


def test_metrics_options_win_over_the_environment() -> None:
    environ = {"SESSION_GRAPHQL_METRICS_PORT": "9090", "SESSION_GRAPHQL_METRICS_HOST": "0.0.0.0"}

    settings = Settings.from_env(environ, metrics_port=9100, metrics_host=None)

    assert (settings.metrics.port, settings.metrics.host) == (9100, "0.0.0.0")


def test_retention_is_off_unless_its_days_are_set_and_reads_its_three_variables() -> None:
    assert Settings.from_env({}).retention == RetentionSettings(default_keep_days=None)

    retention = Settings.from_env(
        {
            "SESSION_GRAPHQL_RETENTION_DAYS": "90",
            "SESSION_GRAPHQL_RETENTION_INTERVAL_SECONDS": "0.5",
            "SESSION_GRAPHQL_RETENTION_BATCH": "25",
        }
    ).retention

    assert retention == RetentionSettings(default_keep_days=90, interval_seconds=0.5, batch_size=25)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_GRAPHQL_METRICS_PORT", "0"),
        ("SESSION_GRAPHQL_METRICS_PORT", "http"),
        ("SESSION_GRAPHQL_METRICS_REFRESH_SECONDS", "0.1"),
    ],
)
def test_unusable_metrics_settings_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_metrics_on_the_apis_own_port_are_refused() -> None:
    with pytest.raises(SettingsError, match="metrics port must differ"):
        Settings.from_env({"SESSION_GRAPHQL_METRICS_PORT": "8000"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_GRAPHQL_RETENTION_DAYS", "0"),
        ("SESSION_GRAPHQL_RETENTION_DAYS", "36501"),
        ("SESSION_GRAPHQL_RETENTION_DAYS", "ninety"),
        ("SESSION_GRAPHQL_RETENTION_INTERVAL_SECONDS", "-1"),
        ("SESSION_GRAPHQL_RETENTION_BATCH", "0"),
        ("SESSION_GRAPHQL_RETENTION_BATCH", "10001"),
    ],
)
def test_a_retention_setting_out_of_bounds_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_subscriptions_listen_on_the_database_unless_a_direct_url_is_set_and_read_their_limits() -> None:
    assert Settings.from_env({}).live == LiveSettings()
    assert LiveSettings().listen_url is None

    live = Settings.from_env(
        {
            "SESSION_GRAPHQL_LISTEN_URL": "postgres://direct:5432/sessions",
            "SESSION_GRAPHQL_SUBSCRIPTIONS_PER_CONNECTION": "10",
            "SESSION_GRAPHQL_SUBSCRIPTIONS_PER_KEY": "50",
            "SESSION_GRAPHQL_SUBSCRIBER_BUFFER": "64",
            "SESSION_GRAPHQL_SUBSCRIBER_SLOW_SECONDS": "2.5",
            "SESSION_GRAPHQL_WS_INIT_TIMEOUT_SECONDS": "3",
            "SESSION_GRAPHQL_LISTEN_PROBE_SECONDS": "1",
        }
    ).live

    assert live == LiveSettings(
        listen_url="postgresql+asyncpg://direct:5432/sessions",
        per_connection=10,
        per_key=50,
        buffer_events=64,
        slow_seconds=2.5,
        init_timeout_seconds=3.0,
        probe_seconds=1.0,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_GRAPHQL_LISTEN_URL", "mysql://elsewhere/db"),
        ("SESSION_GRAPHQL_SUBSCRIPTIONS_PER_CONNECTION", "0"),
        ("SESSION_GRAPHQL_SUBSCRIPTIONS_PER_KEY", "many"),
        ("SESSION_GRAPHQL_SUBSCRIBER_BUFFER", "0"),
        ("SESSION_GRAPHQL_SUBSCRIBER_SLOW_SECONDS", "0"),
        ("SESSION_GRAPHQL_WS_INIT_TIMEOUT_SECONDS", "-1"),
        ("SESSION_GRAPHQL_LISTEN_PROBE_SECONDS", "100000"),
    ],
)
def test_a_subscription_setting_out_of_bounds_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_listening_connection_gets_the_url_as_asyncpg_spells_it() -> None:
    listen = Settings.from_env({"SESSION_GRAPHQL_LISTEN_URL": "postgres://u:p@db:5432/s?sslmode=require"})
    assert listen.live.listen_url is not None
    assert plain_url(listen.live.listen_url) == "postgresql://u:p@db:5432/s?sslmode=require"
    assert plain_url("postgresql+asyncpg://u@/s?host=/run/pg") == "postgresql://u@/s?host=%2Frun%2Fpg"


def test_workers_auto_is_one_per_cpu_this_process_may_use() -> None:
    assert Settings.from_env({"SESSION_GRAPHQL_WORKERS": "auto"}).workers == available_cpus()
    assert Settings.from_env({"SESSION_GRAPHQL_WORKERS": " Auto "}).workers == available_cpus()
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"SESSION_GRAPHQL_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", 64), ("200000 100000", 2), ("150000 100000", 2), ("5000 100000", 1), ("", 64)],
)
def test_available_cpus_are_the_affinity_within_a_containers_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str, expected: int
) -> None:
    # A 64-CPU host, as `docker run --cpus` leaves it in the affinity mask, with cgroup v2's cpu.max.
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert available_cpus(tmp_path / "cpu.max") == expected
    assert available_cpus(tmp_path / "absent") == 64
