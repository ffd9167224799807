"""The client's GraphQL documents, parsed once from ``operations.graphql`` when this module loads."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gql import GraphQLRequest
from graphql import DocumentNode, parse, print_ast
from graphql.utilities import separate_operations

DOCUMENT_FILE = "operations.graphql"


class PreparedRequest(GraphQLRequest):
    """A request whose query text was printed once.

    gql prints the document's AST again for every request it sends, which costs about 0.1 ms per
    call, a sizeable share of a loopback round trip; the text never changes, so it is kept.
    """

    def __init__(self, operation: "Operation", variables: dict[str, Any]) -> None:
        super().__init__(operation.document, variable_values=variables, operation_name=operation.name)
        self._query = operation.query

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self._query, "operationName": self.operation_name}
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


@dataclass(frozen=True)
class Operation:
    """One named operation with just the fragments it uses, so each request carries only its own text."""

    name: str
    document: DocumentNode
    query: str

    def request(self, variables: dict[str, Any]) -> GraphQLRequest:
        return PreparedRequest(self, variables)


def document_text() -> str:
    """The text of ``operations.graphql`` as installed with the package."""
    return Path(__file__).with_name(DOCUMENT_FILE).read_text(encoding="utf-8")


def load_operations(text: str) -> dict[str, Operation]:
    """Every operation of ``text`` by name."""
    return {
        name: Operation(name=name, document=document, query=print_ast(document))
        for name, document in separate_operations(parse(text)).items()
    }


OPERATIONS = load_operations(document_text())

CREATE_SESSION = OPERATIONS["CreateSession"]
READ_SESSION = OPERATIONS["ReadSession"]
LIST_SESSIONS = OPERATIONS["ListSessions"]
UPDATE_SESSION = OPERATIONS["UpdateSession"]
DELETE_SESSION = OPERATIONS["DeleteSession"]
CREATE_AGENT = OPERATIONS["CreateAgent"]
READ_AGENT = OPERATIONS["ReadAgent"]
UPDATE_AGENT = OPERATIONS["UpdateAgent"]
DELETE_AGENT = OPERATIONS["DeleteAgent"]
CREATE_MESSAGE = OPERATIONS["CreateMessage"]
APPEND_MESSAGES = OPERATIONS["AppendMessages"]
READ_MESSAGE = OPERATIONS["ReadMessage"]
UPDATE_MESSAGE = OPERATIONS["UpdateMessage"]
LIST_MESSAGES = OPERATIONS["ListMessages"]
LAST_MESSAGE_ID = OPERATIONS["LastMessageId"]
CREATE_MULTI_AGENT = OPERATIONS["CreateMultiAgent"]
READ_MULTI_AGENT = OPERATIONS["ReadMultiAgent"]
UPDATE_MULTI_AGENT = OPERATIONS["UpdateMultiAgent"]
WRITE_STORAGE_OBJECT = OPERATIONS["WriteStorageObject"]
READ_STORAGE_OBJECT = OPERATIONS["ReadStorageObject"]
DELETE_STORAGE_OBJECT = OPERATIONS["DeleteStorageObject"]
LIST_STORAGE_KEYS = OPERATIONS["ListStorageKeys"]
SEARCH_STORAGE = OPERATIONS["SearchStorage"]
EXPORT_SESSIONS = OPERATIONS["ExportSessions"]
COUNT_SESSIONS = OPERATIONS["CountSessions"]
EXPORT_SESSION = OPERATIONS["ExportSession"]
EXPORT_AGENTS = OPERATIONS["ExportAgents"]
EXPORT_AGENT = OPERATIONS["ExportAgent"]
EXPORT_MESSAGES = OPERATIONS["ExportMessages"]
EXPORT_MULTI_AGENTS = OPERATIONS["ExportMultiAgents"]
RESTORE_SESSION = OPERATIONS["RestoreSession"]
RESTORE_AGENT = OPERATIONS["RestoreAgent"]
RESTORE_MULTI_AGENT = OPERATIONS["RestoreMultiAgent"]
RESTORE_SESSION_LABELS = OPERATIONS["RestoreSessionLabels"]
RESTORE_SESSION_TIMES = OPERATIONS["RestoreSessionTimes"]


@cache
def append_messages_of_agents(agents: int) -> Operation:
    """``appendMessages`` for ``agents`` agents in one request (write-behind's batches): field ``a<n>``
    takes ``$s<n>``, ``$a<n>`` and ``$m<n>``. Top-level mutation fields run one after another, so
    the agents' messages are stored in the order of the fields, each field in its own transaction."""
    numbers = range(agents)
    arguments = ", ".join(f"$s{n}: String!, $a{n}: String!, $m{n}: [MessageInput!]!" for n in numbers)
    fields = " ".join(
        f"a{n}: appendMessages(sessionId: $s{n}, agentId: $a{n}, messages: $m{n}) {{ messageId }}"
        for n in numbers
    )
    document = parse(f"mutation AppendMessagesOfAgents({arguments}) {{ {fields} }}")
    return Operation(name="AppendMessagesOfAgents", document=document, query=print_ast(document))
