"""The error codes clients see in ``extensions.code``, and how every failure maps to one.

Documented set (stable; clients may switch on them):

- ``BAD_REQUEST``: the HTTP request is not a GraphQL request (bad JSON, no query, wrong method).
- ``BAD_USER_INPUT``: an argument is invalid; ``extensions.field`` names it when known.
- ``NOT_FOUND``: the thing, or the parent it must live under, does not exist.
- ``ALREADY_EXISTS``: a create named something that exists; nothing changed.
- ``CONFLICT``: the same message id is stored with different content; nothing was overwritten.
- ``UNAUTHENTICATED`` / ``FORBIDDEN``: reserved for bearer-token roles.
- ``GRAPHQL_PARSE_FAILED`` / ``GRAPHQL_VALIDATION_FAILED``: the document is not valid for the schema.
- ``SERVICE_UNAVAILABLE``: the database cannot be reached, or aborted the work to break a
  deadlock; safe to retry later.
- ``INTERNAL_SERVER_ERROR``: anything else; the details are logged on the server, not sent.
"""

import logging
from collections.abc import Iterator
from enum import StrEnum

from graphql import GraphQLError, GraphQLSyntaxError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from strawberry.extensions import SchemaExtension

from db.errors import AlreadyExistsError, ConflictError, InvalidDataError, NotFoundError

logger = logging.getLogger("graphql_api.errors")


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CONFLICT = "CONFLICT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class InputError(ValueError):
    """An argument failed validation; ``field`` is its path in the request (``agent.agentId``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


_STORE_CODES: dict[type[Exception], ErrorCode] = {
    NotFoundError: ErrorCode.NOT_FOUND,
    AlreadyExistsError: ErrorCode.ALREADY_EXISTS,
    ConflictError: ErrorCode.CONFLICT,
    InvalidDataError: ErrorCode.BAD_USER_INPUT,
    InputError: ErrorCode.BAD_USER_INPUT,
}

INTERNAL_MESSAGE = "Internal server error."
UNAVAILABLE_MESSAGE = "The database could not serve this request now; try again."


def _is_database_unavailable(error: BaseException) -> bool:
    # OSError covers refused and reset connections, a missing unix socket (a stopped embedded
    # database), unknown hosts and timeouts.
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeoutError, OSError)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _sqlstate_class(error: BaseException) -> str | None:
    if not isinstance(error, DBAPIError):
        return None
    state = getattr(error.orig, "sqlstate", None)
    return state[:2] if isinstance(state, str) else None


def classify(error: GraphQLError, *, invalid_document: bool = False) -> ErrorCode:
    """The code for one error of a response; ``invalid_document`` if validation reported it."""
    original = error.original_error
    if isinstance(error, GraphQLSyntaxError):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if invalid_document:
        return ErrorCode.GRAPHQL_VALIDATION_FAILED
    if original is None:
        # Past validation, graphql-core reports without a cause only the coercion of variable
        # values (no path: the document is fine, the values sent with it are not).
        return ErrorCode.BAD_USER_INPUT if error.path is None else ErrorCode.INTERNAL_SERVER_ERROR
    for error_type, code in _STORE_CODES.items():
        if isinstance(original, error_type):
            return code
    if _is_database_unavailable(original) or _sqlstate_class(original) == "40":
        # Class 40 is a deadlock or serialization failure: the same request can succeed again.
        return ErrorCode.SERVICE_UNAVAILABLE
    if _sqlstate_class(original) == "22":
        # A data exception (a value PostgreSQL cannot take) is the input's fault wherever it happens.
        return ErrorCode.BAD_USER_INPUT
    if isinstance(original, GraphQLError):
        return classify(original)
    return ErrorCode.INTERNAL_SERVER_ERROR


def is_expected(error: GraphQLError, *, invalid_document: bool = False) -> bool:
    code = classify(error, invalid_document=invalid_document)
    return code not in (ErrorCode.INTERNAL_SERVER_ERROR, ErrorCode.SERVICE_UNAVAILABLE)


def log_unexpected(errors: list[GraphQLError], *, invalid_document: bool = False) -> None:
    for error in errors:
        if not is_expected(error, invalid_document=invalid_document):
            original = error.original_error
            logger.error(
                "unexpected error at %s: %r",
                ".".join(str(p) for p in error.path or []) or "(operation)",
                original,
                exc_info=(type(original), original, original.__traceback__) if original else None,
            )


def with_code(error: GraphQLError, *, invalid_document: bool = False) -> GraphQLError:
    """The error as the client should see it: a code always, internals never."""
    code = classify(error, invalid_document=invalid_document)
    extensions = dict(error.extensions or {})
    extensions["code"] = code.value
    message = error.message
    if code is ErrorCode.INTERNAL_SERVER_ERROR:
        message = INTERNAL_MESSAGE
    elif code is ErrorCode.SERVICE_UNAVAILABLE:
        message = UNAVAILABLE_MESSAGE
    elif isinstance(error.original_error, InputError):
        extensions["field"] = error.original_error.field
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    """Gives every error of a response its code and masks unexpected ones.

    Strawberry makes one instance per operation, so remembering the validation errors is safe.
    """

    def __init__(self) -> None:
        self.validation_errors: set[int] = set()

    def on_validate(self) -> Iterator[None]:
        yield
        self.validation_errors = {id(error) for error in self.execution_context.pre_execution_errors or []}

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [
                with_code(error, invalid_document=id(error) in self.validation_errors)
                for error in result.errors
            ]
