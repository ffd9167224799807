"""``GraphQLSessionRepository``: Strands' ``SessionRepository`` over the GraphQL session store."""

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from gql import Client
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXTransport
from gql.transport.httpx import httpx as gql_http  # type: ignore[attr-defined]  # httpx2 when installed, else httpx
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage

from client import calls, credentials
from client.backoff import Backoff
from client.credentials import TokenProvider

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.1
IDLE_CONNECTION_SECONDS = 4.0
"""How long an unused connection is kept: less than uvicorn's 5 s keep-alive, so a request is never
sent on a connection the server is closing at that moment (which would fail a write not safe to resend)."""


class GraphQLSessionRepository(SessionRepository):
    """Stores Strands sessions, agents, messages and multi-agent states in the GraphQL session store.

    Give it to ``RepositorySessionManager``; each method sends one GraphQL request over a kept-alive
    HTTP connection (gql's httpx transport, the fastest sync one measured). Calls block, as Strands
    expects, so it also works from inside ``invoke_async`` and ``stream_async``. One repository may be
    shared by threads.

    Reading something missing returns None (``list_messages``: ``[]``); any other failure raises a
    ``client.errors.GraphQLSessionError``, a ``SessionException``. Reads, ``create_message`` and
    ``append_messages`` are sent again after a transport failure, waiting ``backoff`` seconds and
    twice as long each time, up to ``retries`` times. So are ``create_agent`` and
    ``create_multi_agent``: when a resend meets ALREADY_EXISTS, the stored one is read and the call
    succeeds if it is exactly what was sent (its own earlier attempt). Other writes are resent only
    when the server cannot have acted on them: the connection was refused, or the server answered
    RATE_LIMITED. A rate-limited call waits the ``retryAfter`` the server asked for (the
    ``Retry-After`` header of a proxy's 429) and counts against the same ``retries``; when those
    are used up, or the server asks for a wait longer than ``timeout``, it raises
    ``SessionRateLimitedError`` with ``retry_after``.

    Credentials: ``token="..."`` sends ``Authorization: Bearer ...`` with every request. For
    tokens that expire (JWTs), pass a provider instead, a function returning the current token:
    it is called before every request, from whichever thread makes the call, so it must be cheap
    and thread-safe: cache the token and fetch a new one shortly before it expires. When the
    server answers UNAUTHENTICATED (the token may have expired in flight), the provider is called
    once more and the request resent once, whatever the call, since the server did nothing with
    a request it refused; a second refusal raises ``SessionUnauthenticatedError``, as the first
    one does for a fixed token. If the provider raises, the call raises
    ``SessionTokenProviderError`` (a ``SessionUnauthenticatedError``) with the provider's error as
    ``__cause__``, and nothing is sent::

        repo = GraphQLSessionRepository(url, token=identity.access_token)  # identity caches

    Args:
        url: The server's GraphQL endpoint, e.g. ``http://localhost:8000/graphql``.
        token: A bearer token, or a function returning one (see above); not together with an
            ``Authorization`` entry in ``headers``.
        headers: HTTP headers for every request.
        timeout: Seconds to wait for each request's connection and answer; also the longest
            rate-limit wait honoured.
        retries: How many times a call is sent again after a failure that allows it.
        backoff: Seconds to wait before the first retry.
        message_page_size: Messages asked for per request when restoring an agent: at most the
            server's SESSION_GRAPHQL_MAX_LIST_SIZE (10,000 by default).
        labels: Labels for every session this repository creates, e.g. ``{"user": "ana",
            "channel": "web"}``: who and where a conversation belongs to, for filtering and
            grouping in dashboards. Names and values are strings.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | TokenProvider | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        message_page_size: int = calls.MAX_LIST_SIZE,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.labels = calls.check_labels(labels)
        self._backoff = Backoff(retries=retries, base=backoff, longest_asked=timeout)
        self._message_page_size = message_page_size
        sent_headers = credentials.connection_headers(headers, token)
        self._token_provider = None if token is None or isinstance(token, str) else token
        limits = gql_http.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS)
        transport = HTTPXTransport(url, headers=sent_headers, timeout=timeout, limits=limits)
        # No schema: the documents are checked against schema.graphql by the tests, not per call.
        self._client = Client(transport=transport)
        self._session = self._client.connect_sync()  # type: ignore[no-untyped-call]  # gql leaves it bare

    def close(self) -> None:
        """Closes the HTTP connection; later calls raise ``SessionTransportError``."""
        self._client.close_sync()  # type: ignore[no-untyped-call]  # gql leaves it bare

    def __enter__(self) -> "GraphQLSessionRepository":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GraphQLSessionRepository({self.url!r})"

    def _run(self, call: calls.Call[T]) -> T:
        attempts = calls.Attempts(call, self._backoff, self.url, refreshable=self._token_provider is not None)
        while True:
            extra_args = self._request_args(call.name)
            try:
                data = self._session.execute(call.request(), extra_args=extra_args)
            except (TransportError, TimeoutError) as error:
                step = attempts.failed(error)
            else:
                return call.result(data)
            if isinstance(step, calls.Call):
                if self._run(step):
                    return cast(T, None)  # the earlier attempt stored exactly this; see Call.confirm
                raise attempts.not_confirmed()
            time.sleep(step)

    def _request_args(self, operation: str) -> dict[str, Any] | None:
        if self._token_provider is None:
            return None
        try:
            token = self._token_provider()
        except Exception as error:
            raise credentials.provider_failed(operation, error) from error
        return credentials.request_args(token, operation)

    def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Creates the session, with this repository's ``labels``; raises
        ``SessionAlreadyExistsError`` if its id is taken."""
        return self._run(calls.create_session(session, self.labels))

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session, or None."""
        return self._run(calls.read_session(session_id))

    def list_sessions(
        self, limit: int | None = None, *, page_size: int = calls.MAX_PAGE_SIZE, **kwargs: Any
    ) -> list[Session]:
        """Sessions newest first: all of them, or the ``limit`` newest.

        Takes one request per ``page_size`` sessions (at most 1000, the server's largest page).
        """
        listing = calls.SessionListing(limit, page_size)
        while (call := listing.next_call()) is not None:
            self._run(call)
        return listing.sessions

    def update_session(
        self, session_id: str, *, labels: Mapping[str, str] | None = None, title: str | None = None
    ) -> None:
        """Sets the session's labels (all of them: ``{}`` removes them) and/or its title (``""``
        removes it), e.g. a title once the conversation says what it is about; raises
        ``SessionNotFoundError`` if the session is missing and ``SessionBadInputError`` for labels
        the server refuses (at most 32, names of letters, digits, ``_-.``)."""
        self._run(calls.update_session(session_id, labels, title))

    def delete_session(self, session_id: str, **kwargs: Any) -> None:
        """Deletes the session with all it holds; raises ``SessionNotFoundError`` if it is missing."""
        self._run(calls.delete_session(session_id))

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Creates the agent; raises ``SessionNotFoundError`` without the session."""
        self._run(calls.create_agent(session_id, session_agent))

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent, or None (also when the session is missing)."""
        return self._run(calls.read_agent(session_id, agent_id))

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replaces the agent's states, keeping its created_at (also set on ``session_agent``)."""
        self._run(calls.update_agent(session_id, session_agent))

    def delete_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> None:
        """Deletes the agent and its messages; raises ``SessionNotFoundError`` if it is missing."""
        self._run(calls.delete_agent(session_id, agent_id))

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Stores the message; resending it unchanged is harmless, changed is ``SessionConflictError``."""
        self._run(calls.create_message(session_id, agent_id, session_message))

    def append_messages(
        self, session_id: str, agent_id: str, messages: Sequence[SessionMessage], **kwargs: Any
    ) -> None:
        """Stores several messages in one request and one transaction: all of them or none."""
        self._run(calls.append_messages(session_id, agent_id, messages))

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """The message, or None."""
        return self._run(calls.read_message(session_id, agent_id, message_id))

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Replaces the message's content (a redaction), keeping its created_at."""
        self._run(calls.update_message(session_id, agent_id, session_message))

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """The agent's messages by message id, from position ``offset``, at most ``limit`` of them.

        A missing agent or session has none: ``[]``.
        """
        listing = calls.MessageListing(session_id, agent_id, limit, offset, self._message_page_size)
        while (call := listing.next_call()) is not None:
            self._run(call)
        return listing.messages

    def create_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Stores the Graph's or Swarm's ``serialize_state()`` under its id."""
        self._run(calls.create_multi_agent(session_id, multi_agent))

    def read_multi_agent(self, session_id: str, multi_agent_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """The stored state exactly as written, or None."""
        return self._run(calls.read_multi_agent(session_id, multi_agent_id))

    def update_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Replaces the stored state with ``serialize_state()``; keeps its created_at."""
        self._run(calls.update_multi_agent(session_id, multi_agent))
