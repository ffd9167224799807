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
    SessionLimitError,
    SessionNotFoundError,
    SessionRateLimitedError,
    SessionTimeoutError,
    SessionUnauthenticatedError,
    SessionUnavailableError,
)
from client.backoff import Backoff
from client.failures import from_graphql_errors

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


# The codes of the server's limits, credentials and rate limits

NEW_CODES: dict[str, tuple[type[GraphQLSessionError], bool]] = {
    # code: (exception, whether sending the same request again may succeed)
    "RATE_LIMITED": (SessionRateLimitedError, True),
    "REQUEST_TIMEOUT": (SessionTimeoutError, True),
    "STATEMENT_TIMEOUT": (SessionTimeoutError, True),
    "PAYLOAD_TOO_LARGE": (SessionLimitError, False),
    "DOCUMENT_TOO_LARGE": (SessionLimitError, False),
    "TOO_MANY_TOKENS": (SessionLimitError, False),
    "QUERY_TOO_DEEP": (SessionLimitError, False),
    "TOO_MANY_ALIASES": (SessionLimitError, False),
    "QUERY_TOO_COSTLY": (SessionLimitError, False),
    "BATCH_TOO_LARGE": (SessionLimitError, False),
    "MESSAGE_TOO_LARGE": (SessionLimitError, False),
    "JSON_TOO_DEEP": (SessionLimitError, False),
}


@pytest.mark.parametrize("code", sorted(NEW_CODES))
def test_each_limit_code_becomes_its_typed_session_exception(code: str) -> None:
    expected, retryable = NEW_CODES[code]

    error = from_graphql_errors([{"message": "over", "extensions": {"code": code}}], "AppendMessages")

    assert type(error) is expected
    assert isinstance(error, SessionException)
    assert error.code == code
    assert error.retryable is retryable


def test_only_refusals_before_execution_may_be_resent_for_every_call() -> None:
    not_executed = {
        code
        for code in [*EXPECTED, *NEW_CODES]
        if from_graphql_errors([{"message": "x", "extensions": {"code": code}}], "UpdateAgent").never_executed
    }

    assert not_executed == {"UNAUTHENTICATED", "RATE_LIMITED"}


def test_rate_limited_carries_the_wait_the_server_asked_for() -> None:
    errors = [{"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": 0.25}}]

    error = from_graphql_errors(errors, "ReadSession", attempts=4)

    assert isinstance(error, SessionRateLimitedError)
    assert error.retry_after == 0.25
    assert (
        str(error) == "ReadSession failed with RATE_LIMITED: slow down (retry after 0.25 s; after 4 attempts)"
    )


@pytest.mark.parametrize("retry_after", [None, "soon", -1, float("nan"), True, [1]])
def test_a_retry_after_that_is_not_seconds_is_left_out(retry_after: object) -> None:
    errors = [{"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after}}]

    error = from_graphql_errors(errors, "ReadSession")

    assert isinstance(error, SessionRateLimitedError)
    assert error.retry_after is None


def test_a_masked_error_names_the_request_id_to_quote() -> None:
    errors = [
        {
            "message": "Internal server error.",
            "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "r-91"},
        }
    ]

    error = from_graphql_errors(errors, "ReadAgent")

    assert error.request_id == "r-91"
    assert (
        str(error) == "ReadAgent failed with INTERNAL_SERVER_ERROR: Internal server error. (request id r-91)"
    )


def test_extensions_that_are_not_an_object_are_an_internal_error() -> None:
    error = from_graphql_errors([{"message": "odd", "extensions": ["RATE_LIMITED"]}], "ReadSession")

    assert type(error) is GraphQLSessionError
    assert error.code == "INTERNAL_SERVER_ERROR"


def test_backoff_keeps_the_wait_the_server_asked_for_up_to_its_longest() -> None:
    backoff = Backoff(retries=2, base=1.0, longest_asked=5.0)

    assert backoff.delay(1, asked=0.01) == 0.01
    assert backoff.delay(1, asked=5.0) == 5.0
    assert backoff.delay(1, asked=5.1) is None  # fail now rather than block the caller past its timeout
    assert backoff.delay(3, asked=0.01) is None  # the retries are used up
