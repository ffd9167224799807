"""The client's documents are valid for the server's schema, so a schema change that breaks the
client fails here rather than in an agent."""

from pathlib import Path

import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate

from client.operations import OPERATIONS, append_messages_of_agents, document_text

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_operations_file_is_valid_against_the_schema(schema: GraphQLSchema) -> None:
    errors = validate(schema, parse(document_text()))

    assert [error.message for error in errors] == []


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_request_carries_one_valid_operation_with_its_fragments(
    schema: GraphQLSchema, name: str
) -> None:
    sent = parse(OPERATIONS[name].query)

    operations = [d for d in sent.definitions if isinstance(d, OperationDefinitionNode)]
    assert [operation.name.value for operation in operations if operation.name] == [name]
    assert [error.message for error in validate(schema, sent)] == []


@pytest.mark.parametrize("agents", [2, 20])
def test_write_behinds_append_messages_of_several_agents_is_valid(schema: GraphQLSchema, agents: int) -> None:
    sent = parse(append_messages_of_agents(agents).query)

    assert [error.message for error in validate(schema, sent)] == []
    assert len(sent.definitions) == 1
