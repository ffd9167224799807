"""The server's limits as both clients see them: rate limits waited out and resent, every limit code
as its own typed error, request ids on masked errors, and answers too deep for Strands to decode.

The gateway (see test_client_auth.py) answers for the server as its contract says, so a refused
request never reaches the server; the deeply nested message is stored in and served by the real one.
"""

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from strands.types.content import Message
from strands.types.exceptions import SessionException
from strands.types.session import SessionAgent, SessionMessage

from client import (
    GraphQLSessionError,
    GraphQLSessionRepository,
    SessionBadInputError,
    SessionDataError,
    SessionLimitError,
    SessionRateLimitedError,
    SessionTimeoutError,
)
from tests import test_client_auth
from tests.conftest import RunningServer
from tests.test_client_auth import (
    AuthGateway,
    Opener,
    changed_agent,
    graphql_error,
    rate_limited,
    stored_state,
)
from tests.test_client_transport import refusal

FAST = {"backoff": 0.001}

# The auth tests' fixtures: a scripted gateway, sync and async repositories, a session with an agent.
gateway = test_client_auth.gateway
open_repository = test_client_auth.open_repository
session_id = test_client_auth.session_id


def plain(status: str, headers: dict[str, str]) -> bytes:
    """A proxy's refusal: plain text, with ``headers`` added."""
    head, _, body = refusal(status, "refused by the proxy").partition(b"\r\n\r\n")
    extra = "".join(f"\r\n{name}: {value}" for name, value in headers.items()).encode()
    return head + extra + b"\r\n\r\n" + body


# Rate limits


def test_a_rate_limited_write_waits_as_asked_then_is_stored_once(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    """update_agent is not safe to resend after a lost answer, but a rate-limited request did nothing."""
    gateway.answers = [rate_limited(0.05), rate_limited(0.05)]
    repository = open_repository(gateway.url, retries=3, **FAST)

    started = time.monotonic()
    repository.update_agent(session_id, changed_agent({"after": "waiting"}))
    waited = time.monotonic() - started

    assert gateway.operations() == ["UpdateAgent"] * 3
    assert gateway.forwarded == 1
    assert stored_state(server, session_id) == {"after": "waiting"}
    assert 0.1 <= waited < 1  # retryAfter twice; neither the 1 ms backoff nor the 1 s Retry-After header


def test_rate_limited_beyond_the_retries_raises_rate_limited_with_retry_after(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [rate_limited(0.02)] * 5
    repository = open_repository(gateway.url, retries=2, **FAST)

    with pytest.raises(SessionRateLimitedError) as raised:
        repository.read_session(session_id)

    assert raised.value.code == "RATE_LIMITED"
    assert raised.value.retry_after == 0.02
    assert "after 3 attempts" in str(raised.value)
    assert gateway.operations() == ["ReadSession"] * 3


def test_a_wait_longer_than_the_timeout_raises_at_once(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [rate_limited(60.0, header="60")]
    repository = open_repository(gateway.url, timeout=2, retries=3, **FAST)

    started = time.monotonic()
    with pytest.raises(SessionRateLimitedError) as raised:
        repository.read_session(session_id)

    assert time.monotonic() - started < 1
    assert raised.value.retry_after == 60.0
    assert gateway.operations() == ["ReadSession"]


def test_a_rate_limited_create_agent_is_resent_without_reading_back(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [rate_limited(0.01)]
    repository = open_repository(gateway.url, retries=1, **FAST)

    repository.create_agent(session_id, SessionAgent("second", state={"n": 1}, conversation_manager_state={}))

    # Nothing of the refused attempt can be stored, so there is nothing to confirm.
    assert gateway.operations() == ["CreateAgent", "CreateAgent"]
    with GraphQLSessionRepository(server.url) as direct:
        assert direct.read_agent(session_id, "second") is not None


def test_a_proxys_plain_429_gives_its_retry_after_header(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [plain("429 Too Many Requests", {"Retry-After": "7"})]
    repository = open_repository(gateway.url, retries=0)

    with pytest.raises(SessionRateLimitedError) as raised:
        repository.read_session(session_id)

    assert raised.value.retry_after == 7.0
    assert "HTTP 429" in str(raised.value)


def test_a_proxys_plain_429_is_resent_even_for_a_write(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [plain("429 Too Many Requests", {"Retry-After": "0"})]
    repository = open_repository(gateway.url, retries=1, **FAST)

    repository.update_agent(session_id, changed_agent({"past": "the proxy"}))

    assert gateway.operations() == ["UpdateAgent", "UpdateAgent"]
    assert stored_state(server, session_id) == {"past": "the proxy"}


# Limits and timeouts

LIMITS = {
    "PAYLOAD_TOO_LARGE": ("413 Payload Too Large", SessionLimitError),
    "REQUEST_TIMEOUT": ("408 Request Timeout", SessionTimeoutError),
    "DOCUMENT_TOO_LARGE": ("200 OK", SessionLimitError),
    "TOO_MANY_TOKENS": ("200 OK", SessionLimitError),
    "QUERY_TOO_DEEP": ("200 OK", SessionLimitError),
    "TOO_MANY_ALIASES": ("200 OK", SessionLimitError),
    "QUERY_TOO_COSTLY": ("200 OK", SessionLimitError),
    "BATCH_TOO_LARGE": ("200 OK", SessionLimitError),
    "MESSAGE_TOO_LARGE": ("200 OK", SessionLimitError),
    "JSON_TOO_DEEP": ("200 OK", SessionLimitError),
    "STATEMENT_TIMEOUT": ("200 OK", SessionTimeoutError),
}


@pytest.mark.parametrize("code", sorted(LIMITS))
def test_each_limit_code_raises_its_typed_error(
    gateway: AuthGateway, open_repository: Opener, session_id: str, code: str
) -> None:
    status, expected = LIMITS[code]
    gateway.answers = [graphql_error(code, f"over the {code.lower()} limit", status)]
    repository = open_repository(gateway.url, retries=0)

    with pytest.raises(GraphQLSessionError) as raised:
        repository.append_messages(session_id, "agent", [SessionMessage({"role": "user", "content": []}, 0)])

    assert type(raised.value) is expected
    assert isinstance(raised.value, SessionException)
    assert raised.value.code == code
    assert raised.value.operation == "AppendMessages"
    assert f"over the {code.lower()} limit" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("413 Payload Too Large", "PAYLOAD_TOO_LARGE", SessionLimitError),
        ("408 Request Timeout", "REQUEST_TIMEOUT", SessionTimeoutError),
    ],
)
def test_a_proxys_plain_refusal_raises_the_same_typed_error(
    gateway: AuthGateway,
    open_repository: Opener,
    session_id: str,
    status: str,
    code: str,
    expected: type[Any],
) -> None:
    gateway.answers = [plain(status, {})]
    repository = open_repository(gateway.url, retries=0)

    with pytest.raises(expected) as raised:
        repository.update_agent(session_id, changed_agent({}))

    assert raised.value.code == code


def test_the_servers_own_json_depth_limit_raises_a_limit_error(
    server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    """Deeper than the server's cap (64 by default), not than Strands' encoder."""
    repository = open_repository(server.url)
    message: Message = {
        "role": "user",
        "content": [{"toolUse": {"toolUseId": "t", "name": "n", "input": nested(300)}}],
    }

    with pytest.raises(SessionLimitError) as raised:
        repository.create_message(session_id, "agent", SessionMessage(message, 0))

    assert raised.value.code == "JSON_TOO_DEEP"
    assert repository.list_messages(session_id, "agent") == []


def test_a_timeout_is_retried_for_a_read_but_not_for_a_write(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    """The database may have finished a timed-out write's statement just before the deadline."""
    gateway.answers = [graphql_error("STATEMENT_TIMEOUT", "canceling statement due to statement timeout")]
    repository = open_repository(gateway.url, retries=2, **FAST)
    assert repository.read_session(session_id) is not None

    gateway.answers = [graphql_error("STATEMENT_TIMEOUT", "canceling statement due to statement timeout")]
    with pytest.raises(SessionTimeoutError):
        repository.update_agent(session_id, changed_agent({"timed": "out"}))

    assert gateway.operations() == ["ReadSession", "ReadSession", "UpdateAgent"]
    assert stored_state(server, session_id) == {}


def test_a_masked_error_carries_the_request_id(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [
        graphql_error("INTERNAL_SERVER_ERROR", "Internal server error.", requestId="req-7f3a9c")
    ]
    repository = open_repository(gateway.url, retries=0)

    with pytest.raises(GraphQLSessionError) as raised:
        repository.read_agent(session_id, "agent")

    assert raised.value.code == "INTERNAL_SERVER_ERROR"
    assert raised.value.request_id == "req-7f3a9c"
    assert "request id req-7f3a9c" in str(raised.value)


# Values nested too deeply for Strands

DEPTH = 600
"""Deeper than Strands' recursive encoder and decoder reach (about 495 levels), not than JSON parsers."""


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"level": value}
    return value


def deep_tool_use() -> Message:
    return {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": "t-1", "name": "search", "input": nested(DEPTH)}}],
    }


CREATE_MESSAGE = """mutation($s: String!, $m: MessageInput!) {
  createMessage(sessionId: $s, agentId: "agent", message: $m) { messageId }
}"""


def store_deep_message(http: httpx.Client, database_url: str, session_id: str, message_id: int) -> None:
    """Stores ``deep_tool_use()`` through the server; if the server caps JSON depth (JSON_TOO_DEEP),
    stores a small message through it and puts the deep one in its place with SQL, as a row written
    before the cap, or by another writer, would be."""

    def create(message: Any) -> dict[str, Any]:
        variables = {"s": session_id, "m": {"messageId": message_id, "message": message}}
        body: dict[str, Any] = http.post(
            "/graphql", json={"query": CREATE_MESSAGE, "variables": variables}
        ).json()
        return body

    if "errors" not in create(deep_tool_use()):
        return
    placeholder = create({"role": "assistant", "content": [{"text": "placeholder"}]})
    assert "errors" not in placeholder, placeholder
    asyncio.run(replace_stored_message(database_url, session_id, message_id, deep_tool_use()))


async def replace_stored_message(database_url: str, session_id: str, message_id: int, message: Any) -> None:
    # Keyed by the ids alone, so this works whether or not the table has a tenant column.
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE session_messages SET message = CAST(:message AS json)"
                    " WHERE session_id = :sid AND agent_id = 'agent' AND message_id = :mid"
                ),
                {"message": json.dumps(message), "sid": session_id, "mid": message_id},
            )
            assert result.rowcount == 1
    finally:
        await engine.dispose()


def test_a_stored_message_too_deep_for_strands_raises_a_data_error(
    open_repository: Opener,
    server: RunningServer,
    http: httpx.Client,
    database_url: str,
    session_id: str,
) -> None:
    """Such a message made list_messages raise a bare RecursionError, so the agent could never be
    restored and nothing said which message was at fault."""
    repository = open_repository(server.url)
    repository.create_message(
        session_id, "agent", SessionMessage({"role": "user", "content": [{"text": "hi"}]}, 0)
    )
    store_deep_message(http, database_url, session_id, 1)

    with pytest.raises(SessionDataError) as listing:
        repository.list_messages(session_id, "agent")
    with pytest.raises(SessionDataError) as reading:
        repository.read_message(session_id, "agent", 1)

    for raised, operation in ((listing, "ListMessages"), (reading, "ReadMessage")):
        assert raised.value.code == "INVALID_RESPONSE"
        assert raised.value.operation == operation
        assert isinstance(raised.value.__cause__, RecursionError)
        assert "nested too deeply" in str(raised.value)
    assert "message id 1" in str(listing.value)
    assert [m.message_id for m in repository.list_messages(session_id, "agent", limit=1)] == [0]


def test_a_message_too_deep_to_encode_raises_bad_input_before_sending(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    repository = open_repository(gateway.url)

    with pytest.raises(SessionBadInputError, match="nested too deeply") as raised:
        repository.create_message(session_id, "agent", SessionMessage(deep_tool_use(), 1))

    assert isinstance(raised.value.__cause__, RecursionError)
    assert gateway.requests == []
