"""The strawberry schema and its extensions."""

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ValidationCache
from strawberry.types import ExecutionContext

from graphql_api.errors import ErrorCodes, log_unexpected
from graphql_api.resolvers.mutation import Mutation
from graphql_api.resolvers.query import Query
from graphql_api.types.scalars import DateTimeScalar


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
        # Clients send the same few documents over and over; validate each once. (ParserCache is
        # left out: on a syntax error it raises outside the operation hook, so the error would
        # miss its code.)
        lambda: ValidationCache(maxsize=256),
    ],
    scalar_overrides={datetime: DateTimeScalar},
)


def schema_sdl() -> str:
    """The schema as SDL, as ``schema.graphql`` holds it."""
    return schema.as_str() + "\n"
