"""``session-graphql``: serve, migrate, token, export-schema, import. The one place that may use the
server, the database and the client together."""

from graphql_api.cli.main import main

__all__ = ["main"]
