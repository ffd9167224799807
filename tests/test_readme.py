"""The README's GraphQL is what the server answers: every block fits schema.graphql, and the
dashboard queries run without errors."""

import re
from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate

from tests.conftest import GraphQLCall

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
SCHEMA = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
BLOCKS = re.findall(r"```graphql\n(.*?)```", README, re.DOTALL)
# Values a reader would put in for the variables the README's operations declare.
VARIABLES = {"from": "1795996800000", "to": "2026-12-01T00:00:00Z", "after": None}


def test_the_readme_has_graphql_blocks() -> None:
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.strip().splitlines()[0][:40])
def test_every_graphql_block_is_valid_against_schema_graphql(block: str) -> None:
    assert validate(SCHEMA, parse(block)) == []


def test_the_dashboard_queries_run_without_errors(graphql: GraphQLCall) -> None:
    operations = [
        definition
        for block in BLOCKS
        for definition in parse(block).definitions
        if isinstance(definition, OperationDefinitionNode) and definition.operation.value == "query"
    ]
    assert {operation.name.value for operation in operations if operation.name} >= {
        "RecentSessions",
        "Hourly",
        "Tools",
        "Search",
    }
    for block in BLOCKS:
        for definition in parse(block).definitions:
            if not isinstance(definition, OperationDefinitionNode) or definition.operation.value != "query":
                continue
            assert definition.name is not None
            declared = [variable.variable.name.value for variable in definition.variable_definitions or ()]
            body = graphql(
                block,
                {name: VARIABLES[name] for name in declared},
                operationName=definition.name.value,
            )
            assert "errors" not in body, (definition.name.value, body["errors"])
