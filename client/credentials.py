"""Bearer tokens: one fixed token, or a provider asked for the token before each request.

The repositories put a fixed token among the connection's headers. A provider's token goes with
each request on its own (gql's ``extra_args``, which both transports merge with the connection's
headers), so threads sharing a repository never send each other's token.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from client.errors import TOKEN_PROVIDER_FAILED, SessionTokenProviderError

TokenProvider: TypeAlias = Callable[[], str]
AsyncTokenProvider: TypeAlias = Callable[[], str | Awaitable[str]]

AUTHORIZATION = "Authorization"
READ_FROM = "X-Read-From"
"""The server's dashboards may read from a replica that lags; an agent reads its own writes, so
every request of the repositories reads from the primary (a header given in ``headers`` wins)."""


def connection_headers(headers: Mapping[str, str] | None, token: object) -> dict[str, str]:
    """The headers for every request: ``headers``, with a fixed ``token`` as Authorization, and
    reads from the primary."""
    sent = dict(headers or {})
    if not any(name.lower() == READ_FROM.lower() for name in sent):
        sent[READ_FROM] = "primary"
    if token is None:
        return sent
    if any(name.lower() == AUTHORIZATION.lower() for name in sent):
        raise ValueError("pass the credentials either as token= or as an Authorization header, not both")
    if isinstance(token, str):
        if not is_usable(token):
            raise ValueError("token must be a non-empty string of visible ASCII characters")
        sent[AUTHORIZATION] = f"Bearer {token}"
    elif not callable(token):
        raise TypeError(f"token must be a string or a callable returning one, got {type(token).__name__}")
    return sent


def is_usable(token: object) -> bool:
    # A space or line break would end the header early or smuggle in another one.
    return (
        isinstance(token, str)
        and token != ""
        and token.isascii()
        and token.isprintable()
        and " " not in token
    )


def request_args(token: object, operation: str) -> dict[str, Any]:
    """gql's ``extra_args`` sending a provider's ``token`` with one request."""
    if not is_usable(token):
        # Never the value itself: a malformed token may still be a secret.
        returned = "a malformed string" if isinstance(token, str) else type(token).__name__
        raise SessionTokenProviderError(
            f"{operation} was not sent: the token provider returned {returned}, not a non-empty "
            "string of visible ASCII characters without spaces",
            code=TOKEN_PROVIDER_FAILED,
            operation=operation,
        )
    return {"headers": {AUTHORIZATION: f"Bearer {token}"}}


def provider_failed(operation: str, error: Exception) -> SessionTokenProviderError:
    failure = SessionTokenProviderError(
        f"{operation} was not sent: the token provider raised {type(error).__name__}: {error}",
        code=TOKEN_PROVIDER_FAILED,
        operation=operation,
    )
    failure.__cause__ = error
    return failure
