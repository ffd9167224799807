"""The ``session-graphql`` command: serve, migrate, token, rollups, retention, export-schema, import,
export."""

import argparse
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from functools import partial
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import uvicorn
from uvicorn.supervisors import Multiprocess

from db.embedded import EmbeddedPostgres, EmbeddedPostgresError, start_embedded_postgres
from db.startup import StartupError, check_database, migrate
from graphql_api.auth.identity import Role
from graphql_api.auth.jwt import JwtVerifier
from graphql_api.cli import retention, rollups, tokens
from graphql_api.cli.tokens import any_key_made, run_on
from graphql_api.settings import Settings, SettingsError, workers_value

if TYPE_CHECKING:
    from starlette.applications import Starlette

TRACE_LEVEL = 5
DISTRIBUTION = "strands-graphql-session-store"
T = TypeVar("T")


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so ``finally``
    blocks stop the embedded database when a container runtime stops the server or its terminal
    closes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # A closed terminal hangs up more than once (the shell passes SIGHUP on, then the kernel sends it
    # when the shell exits): the first one stops the server, later ones must not cut that short.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise Terminated(signum)


class _Server(uvicorn.Server):
    """uvicorn's server, which shuts down gracefully on SIGINT and SIGTERM, doing the same on SIGHUP
    (its terminal closing) instead of dying with the embedded database left running."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            previous = signal.signal(signal.SIGHUP, self.handle_exit)
            try:
                yield
            finally:
                # Put back before uvicorn raises the signals it caught again, as it does SIGTERM's.
                signal.signal(signal.SIGHUP, previous)


class _Multiprocess(Multiprocess):
    """uvicorn's supervisor of worker processes, stopping on SIGHUP (its terminal closing) as on
    SIGINT and SIGTERM, where uvicorn would restart the workers."""

    def handle_hup(self) -> None:
        logging.getLogger("uvicorn.error").info("Received SIGHUP, exiting.")  # as uvicorn says SIGTERM's
        self.should_exit.set()

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        from graphql_api import metrics

        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                metrics.mark_worker_gone(pid)


def _worker_app(settings: Settings) -> "Starlette":
    """The app of one worker process. A closing terminal hangs up the workers too: they leave it to
    the supervisor, which stops them gracefully (SIGTERM) and then the embedded database."""
    from graphql_api.app import create_app

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return create_app(settings)


@dataclass(frozen=True)
class Prepared:
    """A database ready for the server: reachable and migrated."""

    url: str
    # Set when this process started the embedded PostgreSQL; it must stop it again.
    embedded: EmbeddedPostgres | None

    def release(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def _database(settings: Settings) -> Prepared:
    """The database ``serve`` and ``token`` use: reachable, and migrated where that is ours to do."""
    if settings.database_url is None:
        embedded = start_embedded_postgres(settings.data_dir)
        try:
            migrate(embedded.url)
        except BaseException:
            embedded.stop()
            raise
        return Prepared(url=embedded.url, embedded=embedded)
    check_database(settings.database_url)
    if settings.migrate_on_start:
        migrate(settings.database_url)
    return Prepared(url=settings.database_url, embedded=None)


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is this machine's own (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def _prepare(settings: Settings) -> tuple[Prepared, bool]:
    """Every check and step before ``serve`` listens; each failure is a StartupError or an
    EmbeddedPostgresError whose message is one line, and leaves no database running.

    Also says whether the server will run open (no API key ever made, no JWT issuer), which it
    may only do on loopback or when told ``--insecure``.
    """
    prepared = _database(settings)
    try:
        if settings.jwt.enabled:
            JwtVerifier(settings.jwt)  # a key that is no key is reported now, as one line
            return prepared, False
        is_open = not run_on(prepared.url, any_key_made)
        if is_open and not settings.insecure and not is_loopback(settings.host):
            raise StartupError(
                f"refusing to listen on {settings.host} without credentials: no API key exists and no JWT "
                "issuer is set; make a key with `session-graphql token create --role admin` "
                "(or pass --insecure to serve everyone as admin)"
            )
    except BaseException:
        prepared.release()
        raise
    return prepared, is_open


def _cannot_listen(host: str, port: int, error: OSError, purpose: str = "") -> StartupError:
    reason = error.strerror or str(error)
    address = f"[{host}]" if ":" in host else host
    return StartupError(f"cannot listen on {address}:{port}{purpose}: {reason[:1].lower()}{reason[1:]}")


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound now so a taken port is reported before anything says it is served."""
    # uvicorn's own choice of family, so --host takes what it took before.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise _cannot_listen(host, port, error) from None
    return listening


@contextmanager
def _metrics_listener(settings: Settings) -> Iterator[None]:
    """``/metrics`` on its own address while the block runs, when a metrics port is set.

    The listener is a thread of this process: with workers, the supervisor, which adds up the
    files the workers write (``graphql_api.metrics``) and outlives any one of them, so a scrape
    never lands on a worker that sees only its own share.
    """
    port = settings.metrics.port
    if port is None:
        yield
        return
    from graphql_api import metrics

    with ExitStack() as stack:
        if settings.workers > 1:
            stack.enter_context(metrics.multiprocess_directory())
        try:
            server = metrics.serve_metrics(settings.metrics.host, port)
        except OSError as error:
            raise _cannot_listen(settings.metrics.host, port, error, " for metrics") from None
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        print(f"session-graphql: metrics at http://{settings.metrics.host}:{port}/metrics", flush=True)
        yield


def _serve(settings: Settings) -> None:
    prepared, is_open = _prepare(settings)
    try:
        listening = _listen(settings.host, settings.port)
        with _metrics_listener(settings):
            _run(settings, prepared, is_open, listening)
    finally:
        prepared.release()


EVERY_ADDRESS = ("0.0.0.0", "::", "")


def _where_served(host: str, port: int) -> str:
    """The banner's address: one a browser on this machine can open, which 0.0.0.0 is not."""
    if host in EVERY_ADDRESS:
        return (
            f"GraphiQL at http://127.0.0.1:{port}/graphql on this machine; listening on every "
            f"address ({host or '0.0.0.0'}), so elsewhere use this machine's name or address"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"GraphiQL at http://{shown}:{port}/graphql"


def _secured_by(settings: Settings) -> str:
    if settings.jwt.enabled:
        return f"secured: requests need an API key or a JWT from {settings.jwt.issuer}"
    return "secured: requests need an API key (Authorization: Bearer sgq_...)"


def _run(settings: Settings, prepared: Prepared, is_open: bool, listening: socket.socket) -> None:
    from graphql_api.app import create_app

    where = (
        "DATABASE_URL" if prepared.embedded is None else "embedded PostgreSQL in " + str(settings.data_dir)
    )
    print(f"session-graphql: storing sessions in {where}", flush=True)
    if settings.read_replica.url is not None:
        print("session-graphql: dashboards read from the replica at DATABASE_READ_URL", flush=True)
    if is_open:
        print(
            "session-graphql: OPEN: no API key exists and no JWT issuer is set, so every request "
            "acts as admin until a key is made (session-graphql token create --role admin)",
            flush=True,
        )
    else:
        print(f"session-graphql: {_secured_by(settings)}", flush=True)
    print(f"session-graphql: {_where_served(settings.host, settings.port)}", flush=True)
    # The database is started and migrated already: the app's lifespan only opens its pool.
    served = replace(settings, database_url=prepared.url, migrate_on_start=False)
    # Built here even for workers, so that settings it refuses are one line, not one per worker.
    app = create_app(served)
    # Workers get a factory: each process builds its own app, and pool, from the settings.
    config = uvicorn.Config(
        app if settings.workers == 1 else partial(_worker_app, served),
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        # The request log (graphql_api.request_log) is the one line per request: uvicorn's
        # access line would repeat it with less in it.
        access_log=False,
        proxy_headers=True,
    )
    # uvicorn shuts down gracefully on SIGINT and SIGTERM (here SIGHUP too), then raises the signal again.
    with suppress(KeyboardInterrupt, Terminated):
        if settings.workers == 1:
            _Server(config).run(sockets=[listening])
        else:
            _Multiprocess(config, sockets=[listening]).run()


def _on_database(settings: Settings, work: Callable[[str], T]) -> T:
    """``work`` on the database ``serve`` would use, started (and made) for the command if embedded."""
    prepared = _database(settings)
    try:
        return work(prepared.url)
    finally:
        prepared.release()


def _token(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "create":
        lines = _on_database(settings, lambda url: tokens.create(url, args.role, args.tenant, args.name))
    elif args.action == "list":
        lines = _on_database(settings, lambda url: tokens.listing(url, args.tenant, args.all))
    else:
        lines = _on_database(settings, lambda url: tokens.revoke(url, args.label, args.tenant))
    print("\n".join(lines), flush=True)


def _rollups(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "rebuild":
        keys = settings.rollups.label_keys
        lines = _on_database(settings, lambda url: rollups.rebuild(url, keys, args.tenant))
    else:
        lines = _on_database(settings, rollups.status)
    print("\n".join(lines), flush=True)


def _retention(settings: Settings, args: argparse.Namespace) -> None:
    if args.dry_run:
        lines = _on_database(settings, lambda url: retention.dry_run(url, settings.retention, args.tenant))
    else:
        if args.tenant is not None:
            raise SettingsError("retention: --tenant goes with --dry-run; a pass applies every tenant's rule")
        lines = _on_database(settings, lambda url: retention.run_pass(url, settings.retention))
    print("\n".join(lines), flush=True)


def _migrate(settings: Settings) -> None:
    if settings.database_url is not None:
        check_database(settings.database_url)
        migrate(settings.database_url)
        print("session-graphql: database migrated", flush=True)
        return
    embedded = start_embedded_postgres(settings.data_dir)
    try:
        migrate(embedded.url)
    finally:
        embedded.stop()
    print(f"session-graphql: embedded database in {settings.data_dir} migrated", flush=True)


def _export_schema(output: str) -> None:
    from graphql_api.schema import schema_sdl

    text = schema_sdl()
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        print(f"session-graphql: schema written to {output}", flush=True)


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, not {raw!r}")
    return int(raw)


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _workers(raw: str) -> int:
    try:
        return workers_value(raw, "--workers")
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--workers ")) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-graphql", description="GraphQL session store for Strands agents, on PostgreSQL."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded PostgreSQL unless DATABASE_URL is set)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="server processes sharing the port (default 1; up to one per core; auto: one per available CPU)",
    )
    serve.add_argument(
        "--metrics-port", type=_port, help="serve Prometheus metrics on /metrics at this port (default: off)"
    )
    serve.add_argument("--metrics-host", help="address of the metrics' port (default 127.0.0.1)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="serve without credentials on a non-loopback address when no key exists (everyone is admin)",
    )
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    token = commands.add_parser("token", help="make, list and revoke API keys")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; the last line printed is the key alone")
    create.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="what the key may do: reader (queries only), writer (what an agent needs: also writes), "
        "admin (also deletes, keys and the audit log)",
    )
    create.add_argument("--tenant", help="bind the key to this tenant (default: no tenant, every tenant)")
    create.add_argument("--name", help="the key's label, unique among its tenant's keys in force")
    listed = actions.add_parser("list", help="list keys (never their secrets)")
    listed.add_argument("--tenant", help="only this tenant's keys")
    listed.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = actions.add_parser("revoke", help="revoke a key by its label")
    revoke.add_argument("label", help="the key's label, as `token list` shows it (--name when it was made)")
    revoke.add_argument("--tenant", help="the tenant of the key, when several tenants use the label")
    for action in (create, listed, revoke):
        action.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    rollup = commands.add_parser(
        "rollups", help="rebuild the statistics' rollups, or see how far behind they are"
    )
    rollup_actions = rollup.add_subparsers(dest="action", required=True)
    rebuild = rollup_actions.add_parser(
        "rebuild", help="recompute the rollups from the rows, online (after a restore, an upgrade or a fix)"
    )
    rebuild.add_argument("--tenant", help="only this tenant's rollups (default: every tenant)")
    rollup_status = rollup_actions.add_parser(
        "status", help="the fold's queue and lag, and the kept label keys"
    )
    for action in (rebuild, rollup_status):
        action.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    expiry = commands.add_parser(
        "retention",
        help="delete the sessions idle longer than their tenant's rule now, or see which would go",
    )
    expiry.add_argument(
        "--dry-run",
        action="store_true",
        help="print each tenant's rule and what would be deleted; delete nothing",
    )
    expiry.add_argument("--tenant", help="with --dry-run: only this tenant")
    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument(
        "output", nargs="?", default="schema.graphql", help="file to write, or - (default schema.graphql)"
    )
    _add_import_parser(commands)
    _add_export_parser(commands)
    return parser


def _add_import_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    command = commands.add_parser(
        "import",
        help="copy sessions saved by Strands' FileSessionManager or snapshots into a running server",
        description="Copy the sessions in a Strands FileSessionManager storage directory, or the "
        "snapshots SnapshotSessionManager keeps in a LocalFileStorage directory, into a running "
        "server, through its API. Running it again stores nothing twice.",
    )
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-dir",
        type=Path,
        metavar="DIR",
        help="FileSessionManager's storage_dir, or LocalFileStorage's base directory",
    )
    source.add_argument(
        "--from-file",
        type=Path,
        metavar="FILE",
        help="a file session-graphql export wrote (.jsonl, or .jsonl.gz)",
    )
    command.add_argument(
        "--url", required=True, help="the server's GraphQL endpoint, e.g. http://localhost:8000/graphql"
    )
    command.add_argument(
        "--token",
        help="an API key or JWT (default: $SESSION_GRAPHQL_TOKEN, better: arguments show in process lists)",
    )
    command.add_argument(
        "--tenant", help="the tenant to import into (X-Tenant), for a key bound to no tenant"
    )
    command.add_argument(
        "--dry-run", action="store_true", help="read and compare with the server, write nothing (--from-dir)"
    )


def _add_export_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    command = commands.add_parser(
        "export",
        help="write a tenant's sessions, through the API, to a JSON Lines file import --from-file restores",
        description="Write sessions (labels, title, times), agents, messages, multi-agents and storage "
        "objects of a running server's tenant to a JSON Lines file, page by page through its API.",
    )
    command.add_argument(
        "--url", required=True, help="the server's GraphQL endpoint, e.g. http://localhost:8000/graphql"
    )
    command.add_argument(
        "--token",
        help="an API key or JWT (default: $SESSION_GRAPHQL_TOKEN, better: arguments show in process lists)",
    )
    command.add_argument("--tenant", help="the tenant to export (X-Tenant), for a key bound to no tenant")
    command.add_argument(
        "--since",
        metavar="TIME",
        help="only sessions updated at or after TIME (ISO 8601; UTC without an offset)",
    )
    command.add_argument(
        "--session", nargs="+", metavar="ID", help="only these sessions (with everything in them)"
    )
    command.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="the file to write (gzip when it ends in .gz; default: standard output)",
    )


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "export":
        from graphql_api.cli import exporting

        try:
            raise SystemExit(exporting.run(args))
        except KeyboardInterrupt:
            raise SystemExit(128 + signal.SIGINT) from None
    if args.command == "import":
        # A client of some server, maybe remote: the server's settings and logging are not its own.
        # Imported here: Strands and the client take a second to load, which the other commands need not.
        from graphql_api.cli import importing

        try:
            raise SystemExit(importing.run(args))
        except KeyboardInterrupt:
            raise SystemExit(128 + signal.SIGINT) from None
    try:
        settings = Settings.from_env(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            data_dir=getattr(args, "data_dir", None),
            insecure=getattr(args, "insecure", None),
            metrics_port=getattr(args, "metrics_port", None),
            metrics_host=getattr(args, "metrics_host", None),
        )
    except SettingsError as error:
        raise SystemExit(f"session-graphql: {error}") from None
    logging.addLevelName(TRACE_LEVEL, "TRACE")  # uvicorn's level below DEBUG
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        # Their INFO lines are whole initdb and pg_ctl transcripts and Alembic's running commentary;
        # the lines this command prints say what happened. Debug logging shows them.
        for chatty in ("embedded_postgres", "alembic.runtime.plugins", "alembic.runtime.migration"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _raise_terminated)
    try:
        if args.command == "serve":
            _serve(settings)
        elif args.command == "migrate":
            _migrate(settings)
        elif args.command == "token":
            _token(settings, args)
        elif args.command == "rollups":
            _rollups(settings, args)
        elif args.command == "retention":
            _retention(settings, args)
        else:
            _export_schema(args.output)
    except (StartupError, EmbeddedPostgresError, SettingsError) as error:
        raise SystemExit(f"session-graphql: {error}") from None
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None
    except Terminated as stopped:
        raise SystemExit(128 + stopped.signum) from None


if __name__ == "__main__":
    main()
