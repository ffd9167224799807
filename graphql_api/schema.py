"""The strawberry schema and its extensions."""

from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from functools import lru_cache

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension, ValidationCache
from strawberry.types import ExecutionContext

from graphql_api.errors import ErrorCodes, log_unexpected
from graphql_api.resolvers.mutation import Mutation
from graphql_api.resolvers.query import Query
from graphql_api.types.scalars import DateTimeScalar


@lru_cache(maxsize=256)
def _parse_cached(query: str) -> DocumentNode:
    return parse(query)


class ParsedDocumentCache(SchemaExtension):
    """Parses each distinct document once: clients send the same few over and over.

    Unlike strawberry's ParserCache, a syntax error is left for strawberry's own parse to report,
    so it goes through the operation hooks and gets its error code like any other error.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and not context.parse_options:
            with suppress(GraphQLError):
                context.graphql_document = _parse_cached(context.query)
        yield


class SessionStoreSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (bad input, not found) are answers, not incidents: only log the rest.
        log_unexpected(errors)


schema = SessionStoreSchema(
    query=Query,
    mutation=Mutation,
    extensions=[
        ErrorCodes,
        ParsedDocumentCache,
        lambda: ValidationCache(maxsize=256),
    ],
    scalar_overrides={datetime: DateTimeScalar},
)


def schema_sdl() -> str:
    """The schema as SDL, as ``schema.graphql`` holds it."""
    return schema.as_str() + "\n"
