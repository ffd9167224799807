"""The ``session-graphql`` command: serve, migrate, export-schema."""

import argparse
import logging
import sys
from pathlib import Path

from graphql_api.settings import Settings, SettingsError

TRACE_LEVEL = 5


def _serve(settings: Settings) -> None:
    import uvicorn

    from graphql_api.app import create_app

    where = (
        "embedded PostgreSQL in " + str(settings.data_dir)
        if settings.database_url is None
        else "DATABASE_URL"
    )
    print(f"session-graphql: storing sessions in {where}", flush=True)
    print(f"session-graphql: GraphiQL at http://{settings.host}:{settings.port}/graphql", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )


def _migrate(settings: Settings) -> None:
    from db.migrate import upgrade

    if settings.database_url is not None:
        upgrade(settings.database_url)
        print("session-graphql: database migrated", flush=True)
        return
    from db.embedded import start_embedded_postgres

    embedded = start_embedded_postgres(settings.data_dir)
    try:
        upgrade(embedded.url)
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
    port = int(raw)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, not {port}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-graphql", description="GraphQL session store for Strands agents, on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded PostgreSQL unless DATABASE_URL is set)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument(
        "output", nargs="?", default="schema.graphql", help="file to write, or - (default schema.graphql)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            data_dir=getattr(args, "data_dir", None),
        )
    except SettingsError as error:
        raise SystemExit(f"session-graphql: {error}") from None
    logging.addLevelName(TRACE_LEVEL, "TRACE")  # uvicorn's level below DEBUG
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Their INFO lines are whole initdb and pg_ctl transcripts; keep them for debug logging.
    for chatty in ("embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.command == "serve":
        _serve(settings)
    elif args.command == "migrate":
        _migrate(settings)
    else:
        _export_schema(args.output)


if __name__ == "__main__":
    main()
