"""Every documented error code becomes its own SessionException subclass.

The server tests show each code on the wire; this covers the mapping for all of them, including
UNAUTHENTICATED and FORBIDDEN, which the server reserves for bearer-token roles it does not have yet.
"""

import pytest
from strands.types.exceptions import SessionException

from client import (
    GraphQLSessionError,
    SessionAlreadyExistsError,
    SessionBadInputError,
    SessionConflictError,
    SessionForbiddenError,
    SessionNotFoundError,
    SessionUnauthenticatedError,
    SessionUnavailableError,
)
from client.errors import from_graphql_errors

EXPECTED = {
    "NOT_FOUND": SessionNotFoundError,
    "ALREADY_EXISTS": SessionAlreadyExistsError,
    "CONFLICT": SessionConflictError,
    "BAD_USER_INPUT": SessionBadInputError,
    "UNAUTHENTICATED": SessionUnauthenticatedError,
    "FORBIDDEN": SessionForbiddenError,
    "SERVICE_UNAVAILABLE": SessionUnavailableError,
    "GRAPHQL_PARSE_FAILED": GraphQLSessionError,
    "GRAPHQL_VALIDATION_FAILED": GraphQLSessionError,
    "INTERNAL_SERVER_ERROR": GraphQLSessionError,
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_error_code_becomes_a_session_exception_carrying_it(code: str) -> None:
    errors = [{"message": "went wrong", "path": ["createAgent"], "extensions": {"code": code}}]

    error = from_graphql_errors(errors, "CreateAgent")

    assert type(error) is EXPECTED[code]
    assert isinstance(error, SessionException)
    assert error.code == code
    assert str(error) == f"CreateAgent failed with {code}: went wrong"
    assert error.retryable == (code == "SERVICE_UNAVAILABLE")


def test_bad_input_carries_the_field_the_server_named() -> None:
    errors = [
        {"message": "must not be empty", "extensions": {"code": "BAD_USER_INPUT", "field": "agent.agentId"}}
    ]

    error = from_graphql_errors(errors, "CreateAgent")

    assert isinstance(error, SessionBadInputError)
    assert error.field == "agent.agentId"
    assert "(agent.agentId)" in str(error)


def test_an_error_without_a_code_is_an_internal_error() -> None:
    error = from_graphql_errors([{"message": "boom"}], "ReadSession")

    assert type(error) is GraphQLSessionError
    assert error.code == "INTERNAL_SERVER_ERROR"
