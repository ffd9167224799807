"""Which database a request reads from, when a read replica is configured (``DATABASE_READ_URL``).

Dashboards' reads may go to a streaming replica; an agent always reads its own writes from the
primary. One request reads from one database: a query operation whose root fields are all
dashboard fields (listings, search, statistics) reads from the replica, nested fields and counts
included; any other operation (an agent's look-ups by id, storage, admin fields, every mutation)
from the primary. A caller may say otherwise for its queries with ``X-Read-From``: ``primary``
(the client sends it with every request, so an agent's ``sessions`` listing is fresh too) or
``replica`` (GraphiQL's page sends it: a person exploring reads like a dashboard). A mutation
reads and writes on the primary whatever the header says.
"""

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

from graphql import DocumentNode, OperationDefinitionNode, OperationType
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from graphql_api.auth.permissions import root_fields
from graphql_api.errors import ErrorCode, Refusal

if TYPE_CHECKING:
    from graphql_api.context import Context  # which holds a ReadFrom

READ_FROM_HEADER = "x-read-from"


class ReadFrom(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"


DASHBOARD_FIELDS = frozenset(
    {"sessions", "agents", "messages", "searchMessages", "conversationStats", "toolStats"}
)
"""Root fields a dashboard reads, which may be as old as the replica's replay lag."""
ANY_DATABASE_FIELDS = frozenset({"__typename", "__schema", "__type"})
"""Root fields that read no database, and so decide nothing."""


def read_from_header(headers: Mapping[str, str]) -> ReadFrom | None:
    """The ``X-Read-From`` a request sent, or a ``Refusal`` (HTTP 400) for a value it cannot be."""
    given = headers.get(READ_FROM_HEADER)
    if given is None:
        return None
    try:
        return ReadFrom(given.strip().lower())
    except ValueError:
        raise Refusal(400, ErrorCode.BAD_REQUEST, "X-Read-From must be primary or replica.") from None


def reads_from_replica(
    document: DocumentNode, operation: OperationDefinitionNode, asked: ReadFrom | None
) -> bool:
    """Whether ``operation`` may read from the replica: a query, asked to or made of dashboard fields."""
    if operation.operation is not OperationType.QUERY or asked is ReadFrom.PRIMARY:
        return False
    if asked is ReadFrom.REPLICA:
        return True
    names = {field.name.value for field in root_fields(document, operation)} - ANY_DATABASE_FIELDS
    return bool(names) and names <= DASHBOARD_FIELDS


class ReadRouting(SchemaExtension):
    """Sends the reads of an operation that may read from the replica there, before anything reads."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request: Context = context.context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        if (
            request.read_replica is not None
            and document is not None
            and operation is not None
            and reads_from_replica(document, operation, request.read_from)
        ):
            request.read_from_replica()
        yield
