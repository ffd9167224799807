"""Bearer tokens with both clients: a fixed token on every request, a provider asked before each
request and once more after UNAUTHENTICATED, and typed errors when either fails.

The gateway here stands where the server's authentication does: it answers for the server as the
server's contract says (401 with ``WWW-Authenticate: Bearer`` and a GraphQL error body, 429 with
``retryAfter``, ...) or as a proxy would (plain text), and forwards everything else to the real
server. A request it answers itself never reaches the server.
"""

import asyncio
import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from strands.types.session import Session, SessionAgent, SessionType

from client import (
    AsyncGraphQLSessionRepository,
    GraphQLSessionRepository,
    SessionForbiddenError,
    SessionTokenProviderError,
    SessionUnauthenticatedError,
)
from tests.conftest import RunningServer
from tests.test_client_semantics import AsyncOnItsOwnLoop
from tests.test_client_transport import Gateway, refusal

NewId = Callable[[str], str]
Opener = Callable[..., Any]


def answer(status: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 response with a JSON body."""
    content = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(content)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + content


def graphql_error(
    code: str,
    message: str = "refused",
    status: str = "200 OK",
    headers: dict[str, str] | None = None,
    **more: Any,
) -> bytes:
    """What the server answers for a request it refuses with ``code``; ``more`` goes in the extensions."""
    error = {"message": message, "extensions": {"code": code, **more}}
    return answer(status, {"data": None, "errors": [error]}, headers)


def unauthenticated(message: str = "the token has expired") -> bytes:
    return graphql_error("UNAUTHENTICATED", message, "401 Unauthorized", {"WWW-Authenticate": "Bearer"})


def rate_limited(retry_after: float, header: str = "1") -> bytes:
    return graphql_error(
        "RATE_LIMITED",
        "too many requests",
        "429 Too Many Requests",
        {"Retry-After": header},
        retryAfter=retry_after,
    )


class AuthGateway(Gateway):
    """The transport tests' gateway, which can also check bearer tokens and answer for the server.

    ``accepted`` is the set of tokens let through (None: any or none); a refused one is answered
    as the server does, or with a proxy's plain-text 401 when ``as_proxy``. ``answers`` are sent,
    in order, to the next requests instead of forwarding them. It records every request's
    Authorization and forwards none (the server behind it would check them against its own keys).
    """

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.accepted: set[str] | None = None
        self.as_proxy = False
        self.answers: list[bytes] = []
        self.authorizations: list[str | None] = []
        self.forwarded = 0

    def _checks_credentials(self) -> bool:
        return True

    def _refusal(self, head: bytes) -> bytes | None:
        authorization = request_headers(head).get("authorization")
        with self._lock:
            self.authorizations.append(authorization)
            if self.answers:
                return self.answers.pop(0)
            accepted = self.accepted is None or authorization in {
                f"Bearer {token}" for token in self.accepted
            }
            if accepted:
                self.forwarded += 1
                return None
        return refusal("401 Unauthorized", "credentials required") if self.as_proxy else unauthenticated()


def request_headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


class Issuer:
    """A token provider handing out ``tokens`` in turn (the last one again once they run out)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = tokens
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            token = self.tokens[min(self.calls, len(self.tokens) - 1)]
            self.calls += 1
        return token


@pytest.fixture
def gateway(server: RunningServer) -> Iterator[AuthGateway]:
    running = AuthGateway(server.port)
    yield running
    running.close()


@pytest.fixture(params=["sync", "async"])
def open_repository(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens sync or async repositories (the async one called like the sync one); closes them after."""
    opened: list[Any] = []

    def open_repository(url: str, **options: Any) -> Any:
        if request.param == "sync":
            repository: Any = GraphQLSessionRepository(url, **options)
        else:
            repository = AsyncOnItsOwnLoop(url)
            repository.repository = AsyncGraphQLSessionRepository(url, **options)
        opened.append(repository)
        return repository

    yield open_repository
    for repository in opened:
        repository.close()


@pytest.fixture
def session_id(server: RunningServer, new_id: NewId) -> str:
    with GraphQLSessionRepository(server.url) as repository:
        session = repository.create_session(
            Session(session_id=new_id("session"), session_type=SessionType.AGENT)
        )
        repository.create_agent(
            session.session_id, SessionAgent("agent", state={}, conversation_manager_state={})
        )
    return session.session_id


def stored_state(server: RunningServer, session_id: str) -> dict[str, Any]:
    with GraphQLSessionRepository(server.url) as repository:
        agent = repository.read_agent(session_id, "agent")
    assert agent is not None
    return agent.state


def changed_agent(state: dict[str, Any]) -> SessionAgent:
    return SessionAgent("agent", state=state, conversation_manager_state={})


# A fixed token


def test_a_fixed_token_is_sent_with_every_request(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.accepted = {"s3cret"}
    repository = open_repository(gateway.url, token="s3cret")

    assert repository.read_session(session_id) is not None
    repository.update_agent(session_id, changed_agent({"seen": 1}))
    assert repository.list_messages(session_id, "agent") == []

    assert gateway.authorizations == ["Bearer s3cret"] * 3


def test_a_refused_fixed_token_raises_unauthenticated_at_once(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.accepted = {"current"}
    repository = open_repository(gateway.url, token="revoked", retries=3, backoff=0.01)

    with pytest.raises(SessionUnauthenticatedError) as raised:
        repository.read_session(session_id)

    assert raised.value.code == "UNAUTHENTICATED"
    assert "the token has expired" in str(raised.value)
    assert gateway.operations() == ["ReadSession"]


def test_the_servers_own_refusal_of_an_unknown_token_raises_unauthenticated(
    server: RunningServer, open_repository: Opener
) -> None:
    repository = open_repository(server.url, token="not-a-key-of-this-server", retries=3, backoff=0.01)

    with pytest.raises(SessionUnauthenticatedError) as raised:
        repository.read_session("s-1")

    assert raised.value.code == "UNAUTHENTICATED"
    assert raised.value.operation == "ReadSession"


# A token provider


def test_a_token_provider_is_asked_before_every_request(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    issuer = Issuer("t1", "t2", "t3")
    gateway.accepted = {"t1", "t2", "t3"}
    repository = open_repository(gateway.url, token=issuer)

    repository.read_session(session_id)
    repository.update_agent(session_id, changed_agent({"seen": 2}))
    repository.read_agent(session_id, "agent")

    assert gateway.authorizations == ["Bearer t1", "Bearer t2", "Bearer t3"]
    assert issuer.calls == 3


@pytest.mark.parametrize("refused_by", ["server", "proxy"])
def test_an_expired_token_is_replaced_and_even_a_write_resent_once(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str, refused_by: str
) -> None:
    """update_agent is never resent after a lost answer; after a 401 it is, as the server did nothing."""
    gateway.accepted = {"fresh"}
    gateway.as_proxy = refused_by == "proxy"
    issuer = Issuer("expired", "fresh")
    repository = open_repository(gateway.url, token=issuer, retries=0)

    repository.update_agent(session_id, changed_agent({"after": "refresh"}))

    assert gateway.operations() == ["UpdateAgent", "UpdateAgent"]
    assert gateway.authorizations == ["Bearer expired", "Bearer fresh"]
    assert gateway.forwarded == 1
    assert stored_state(server, session_id) == {"after": "refresh"}


def test_a_token_refused_again_after_the_refresh_raises_unauthenticated(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    gateway.accepted = {"never-issued"}
    issuer = Issuer("expired")
    repository = open_repository(gateway.url, token=issuer, retries=3, backoff=0.01)

    with pytest.raises(SessionUnauthenticatedError) as raised:
        repository.read_session(session_id)

    assert type(raised.value) is SessionUnauthenticatedError
    assert issuer.calls == 2
    assert gateway.operations() == ["ReadSession", "ReadSession"]


def test_after_the_servers_own_refusal_a_provider_is_asked_once_more(
    server: RunningServer, open_repository: Opener
) -> None:
    issuer = Issuer("unknown-1", "unknown-2")
    repository = open_repository(server.url, token=issuer, retries=3, backoff=0.01)

    with pytest.raises(SessionUnauthenticatedError):
        repository.update_agent("s-1", changed_agent({}))

    assert issuer.calls == 2  # one request each: the refused one, and one resend with a new token


def test_forbidden_is_raised_without_asking_for_another_token(
    gateway: AuthGateway, server: RunningServer, open_repository: Opener, session_id: str
) -> None:
    gateway.answers = [graphql_error("FORBIDDEN", "readers may not update agents")]
    issuer = Issuer("reader")
    repository = open_repository(gateway.url, token=issuer, retries=3, backoff=0.01)

    with pytest.raises(SessionForbiddenError, match="readers may not update agents"):
        repository.update_agent(session_id, changed_agent({"by": "reader"}))

    assert issuer.calls == 1
    assert gateway.operations() == ["UpdateAgent"]
    assert stored_state(server, session_id) == {}


def test_a_failing_token_provider_raises_a_typed_error_and_sends_nothing(
    gateway: AuthGateway, open_repository: Opener, session_id: str
) -> None:
    outage = ConnectionError("identity provider unreachable")

    def provider() -> str:
        raise outage

    repository = open_repository(gateway.url, token=provider)

    with pytest.raises(SessionTokenProviderError) as raised:
        repository.read_session(session_id)

    assert isinstance(raised.value, SessionUnauthenticatedError)
    assert raised.value.code == "TOKEN_PROVIDER_FAILED"
    assert raised.value.operation == "ReadSession"
    assert raised.value.__cause__ is outage
    assert "identity provider unreachable" in str(raised.value)
    assert gateway.requests == []


@pytest.mark.parametrize("returned", [None, "", "two words", "line\r\nX-Injected: 1", 42])
def test_a_provider_returning_no_usable_token_raises_a_typed_error(
    gateway: AuthGateway, open_repository: Opener, session_id: str, returned: Any
) -> None:
    repository = open_repository(gateway.url, token=lambda: returned)

    with pytest.raises(SessionTokenProviderError, match="ReadSession was not sent"):
        repository.read_session(session_id)

    assert gateway.requests == []


def test_threads_sharing_a_repository_each_send_the_token_their_request_was_given(
    gateway: AuthGateway, session_id: str
) -> None:
    """The provider's token travels with each request, not in headers the threads share."""
    counter = itertools.count()
    issued: list[str] = []
    issued_lock = threading.Lock()

    def provider() -> str:
        with issued_lock:
            token = f"token-{next(counter)}"
            issued.append(token)
        return token

    with (
        GraphQLSessionRepository(gateway.url, token=provider) as repository,
        ThreadPoolExecutor(max_workers=8) as pool,
        frequent_thread_switches(),
    ):
        list(pool.map(lambda _: repository.read_session(session_id), range(80)))

    assert len(issued) == 80
    assert sorted(gateway.authorizations, key=str) == sorted(f"Bearer {token}" for token in issued)


@contextmanager
def frequent_thread_switches() -> Iterator[None]:
    """Threads take turns every few bytecodes, so a race between them shows up within a short test
    (with a token kept in headers the threads share, this one fails every time)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


async def test_an_async_provider_may_be_a_coroutine_function(gateway: AuthGateway, session_id: str) -> None:
    issued = iter(["expired", "fresh"])
    gateway.accepted = {"fresh"}

    async def fresh_token() -> str:
        await asyncio.sleep(0)  # as a refresh over HTTP would
        return next(issued)

    async with AsyncGraphQLSessionRepository(gateway.url, token=fresh_token) as repository:
        await repository.create_agent(
            session_id, SessionAgent("second", state={}, conversation_manager_state={})
        )

    # The refused first attempt stored nothing, so the resend is not checked against a stored agent.
    assert gateway.operations() == ["CreateAgent", "CreateAgent"]
    assert gateway.authorizations == ["Bearer expired", "Bearer fresh"]


async def test_an_async_provider_that_raises_is_a_typed_error(gateway: AuthGateway, session_id: str) -> None:
    async def broken() -> str:
        raise RuntimeError("refresh token revoked")

    async with AsyncGraphQLSessionRepository(gateway.url, token=broken) as repository:
        with pytest.raises(SessionTokenProviderError) as raised:
            await repository.read_session(session_id)

    assert isinstance(raised.value.__cause__, RuntimeError)
    assert gateway.requests == []


# Refused arguments


@pytest.mark.parametrize("repository_type", [GraphQLSessionRepository, AsyncGraphQLSessionRepository])
@pytest.mark.parametrize("header", ["Authorization", "authorization"])
@pytest.mark.parametrize("token", ["s3cret", lambda: "s3cret"], ids=["fixed", "provider"])
def test_a_token_and_an_authorization_header_together_are_a_value_error(
    repository_type: type[Any], header: str, token: Any
) -> None:
    with pytest.raises(ValueError, match="not both"):
        repository_type("http://127.0.0.1:9/graphql", token=token, headers={header: "Bearer other"})


@pytest.mark.parametrize("repository_type", [GraphQLSessionRepository, AsyncGraphQLSessionRepository])
@pytest.mark.parametrize("token", ["", "with space", "new\nline"])
def test_an_unusable_fixed_token_is_a_value_error(repository_type: type[Any], token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        repository_type("http://127.0.0.1:9/graphql", token=token)
