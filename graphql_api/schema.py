"""The strawberry schema and its extensions."""

from collections.abc import Callable
from datetime import datetime

import strawberry
from graphql import ASTValidationRule, GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.types import ExecutionContext

from graphql_api.auth.permissions import AccessControl
from graphql_api.errors import ValidationErrorCodes, log_unexpected
from graphql_api.execution import BudgetedExecutor, FastExecutor
from graphql_api.guards.documents import DocumentCache, document_cache_extension
from graphql_api.guards.request_limits import RequestLimits
from graphql_api.live.connection import SubscriptionTransport
from graphql_api.read_routing import ReadRouting
from graphql_api.resolvers.root import Mutation, Query, Subscription
from graphql_api.settings import Limits
from graphql_api.types.scalars import (
    Base64,
    Base64Scalar,
    Count,
    CountScalar,
    DateTimeScalar,
    Time,
    TimeScalar,
)


class SessionStoreSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (bad input, not found) are answers, not incidents: only log the rest.
        log_unexpected(errors)


def create_schema(
    limits: Limits | None = None,
    *,
    introspection: bool = True,
    fast_execution: bool = True,
    operation_spans: Callable[[], SchemaExtension] | None = None,
) -> SessionStoreSchema:
    """The schema with ``limits`` on every document; one per app, as its caches live in it.
    ``operation_spans`` makes the extension that traces each operation (``graphql_api.tracing``);
    ``fast_execution`` False runs documents without this server's shortcuts (``FastExecutor``)."""
    limits = limits or Limits()
    # strawberry's depth and alias limiters' rules (and the one its DisableIntrospection adds),
    # built once: rule classes made per request would defeat the validation cache, which keys on them.
    rules: list[type[ASTValidationRule]] = [
        depth_rule(limits.max_depth, None),
        alias_rule(limits.max_aliases),
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return SessionStoreSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            # First: its span covers the other extensions' work, and the SQL they send.
            *([operation_spans] if operation_spans is not None else []),
            ValidationErrorCodes,
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            lambda: AddValidationRules(rules),
            document_cache_extension(DocumentCache(), limits),
            AccessControl,
            SubscriptionTransport,
            # Before RequestLimits, whose cost estimate may read (a looked-up session's size).
            ReadRouting,
            RequestLimits,
        ],
        scalar_overrides={
            datetime: DateTimeScalar,
            Time: TimeScalar,
            Base64: Base64Scalar,
            Count: CountScalar,
        },
        execution_context_class=FastExecutor if fast_execution else BudgetedExecutor,
    )


schema = create_schema()
"""The schema with default limits, for exporting the SDL and for tests that need no server."""


def schema_sdl() -> str:
    """The schema as SDL, as ``schema.graphql`` holds it."""
    return schema.as_str() + "\n"
