"""``GraphQLSessionRepository``: Strands' ``SessionRepository`` over the GraphQL session store."""

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from gql import Client
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXTransport
from gql.transport.httpx import httpx as gql_http  # type: ignore[attr-defined]  # httpx2 when installed, else httpx
from strands.session.session_repository import SessionRepository
from strands.types.session import Session, SessionAgent, SessionMessage

from client import calls, credentials, watching
from client.answers import decode_answer
from client.backoff import Backoff
from client.credentials import TokenProvider
from client.errors import GraphQLSessionError
from client.repository_base import IDLE_CONNECTION_SECONDS, RepositoryBase
from client.trace_context import with_trace_context
from client.write_behind.threaded import ThreadedWriteBehind

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

T = TypeVar("T")


class GraphQLSessionRepository(RepositoryBase[TokenProvider, ThreadedWriteBehind], SessionRepository):
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

    Write-behind (``write_behind=True``): ``create_message``, ``update_agent`` and ``update_message``
    return as soon as the write is queued, with a copy of what was passed (changing the object
    afterwards changes nothing; an update's ``created_at`` is set on it once delivered). One daemon
    thread, started by the first such write, sends the queue in order; ``create_message`` calls
    queued together go as one ``appendMessages`` per agent (at most 100 messages), several agents'
    in one request (at most 20 agents and 500 messages; a session's writes keep their order). A
    request the server refuses is resent agent by agent, and an agent's batch message by message,
    so only the refused message fails; a server that refuses so many aliases gets fewer agents a
    request. Each write follows the retry rules above, but since no caller waits on it, it
    is retried for ``write_behind_retry_seconds`` rather than ``retries`` times: long enough for a
    server restart. Every other method first waits until its session's queued writes are
    delivered, so an agent always reads its own writes and creates and deletes keep their order
    (``list_sessions`` waits for every session's). ``flush()`` waits for all of them, and so do
    ``close()`` and the interpreter's exit (``atexit``) for a repository not closed. At most
    ``max_pending`` writes wait to be delivered; one more blocks until the sender makes room. The
    token provider is then also called from the sender thread.

    A write that fails for good (a refusal such as ``SessionBadInputError``, or retries that found
    no server for ``write_behind_retry_seconds``) is raised once, as the exception the call would
    have raised without write-behind, by the next call for its session (instead of doing what it
    was asked), or else by ``flush()`` or ``close()`` (at exit: logged). The writes of that session
    queued after it are dropped unsent, since storing them would leave a gap; a note on the
    exception says how many. So the stored session holds every write made before the failed one
    and none after it: restore the agent from the store to go on.

    What a crash loses with write-behind: the writes not delivered yet, at most ``max_pending``
    and usually the last few of a turn, always the newest of their session (the store keeps a
    prefix of each session's writes, as if the program had stopped a moment earlier; a write
    being sent at that moment is stored whole or not at all). A crash is whatever ends the
    process without ``atexit``: SIGKILL (the out-of-memory killer), ``os._exit``, a fatal signal,
    power loss, and SIGTERM's default action: ``docker stop`` and Kubernetes send it, so install a
    handler that exits, ``signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))``, or call
    ``close()`` when told to stop. At exit, writes the server does not take within
    ``write_behind_retry_seconds`` are logged as lost.

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
        write_behind: Return from message writes and agent updates before they are delivered
            (see above).
        max_pending: With write-behind, how many writes may wait to be delivered before the next
            one blocks.
        write_behind_retry_seconds: With write-behind, for how long a write that may be resent is
            retried (with ``backoff``, at most 2 s apart) before it fails.
    """

    def _write_behind_sender(self, max_pending: int) -> ThreadedWriteBehind:
        return ThreadedWriteBehind(self._deliver, max_pending, self.url)

    def _open(self, headers: dict[str, str], timeout: float) -> None:
        limits = gql_http.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS)
        transport = HTTPXTransport(
            self.url, headers=headers, timeout=timeout, limits=limits, json_deserialize=decode_answer
        )
        # No schema: the documents are checked against schema.graphql by the tests, not per call.
        self._client = Client(transport=transport)
        self._session = self._client.connect_sync()  # type: ignore[no-untyped-call]  # gql leaves it bare

    def flush(self) -> None:
        """With write-behind, waits until every write made so far is delivered or has failed, and
        raises the oldest failure not raised yet (call again for the next one). Without, returns."""
        if self._write_behind is not None:
            self._write_behind.flush()

    def close(self) -> None:
        """Delivers the pending writes (as ``flush``), then closes the HTTP connection; later calls
        raise ``SessionTransportError``. Raises the oldest undelivered write's failure (noting the
        others') after closing."""
        failure = self._write_behind.close() if self._write_behind is not None else None
        self._client.close_sync()  # type: ignore[no-untyped-call]  # gql leaves it bare
        if failure is not None:
            raise failure

    def __enter__(self) -> "GraphQLSessionRepository":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GraphQLSessionRepository({self.url!r})"

    def _run(self, call: calls.Call[T], backoff: Backoff | None = None, deadline: float | None = None) -> T:
        attempts = self._attempts(call, backoff, deadline)
        while True:
            extra_args = with_trace_context(self._request_args(call.name))
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

    def execute(self, call: calls.Call[T]) -> T:
        """Sends one prepared call with this repository's retry rules (for ``GraphQLStorage``)."""
        return self._run(call)

    def _deliver(self, call: calls.Call[None]) -> None:
        """How the write-behind thread sends a write: retried for ``write_behind_retry_seconds``."""
        self._run(call, self._delivery_backoff, time.monotonic() + self._delivery_seconds)

    def _wait_for_writes(self, session_id: str | None) -> None:
        """With write-behind: waits until the session's queued writes (None: every session's) are
        delivered, and raises the failure of one that could not be."""
        if self._write_behind is not None:
            self._write_behind.wait_for(session_id)

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
        self._wait_for_writes(session.session_id)
        return self._run(calls.create_session(session, self.labels))

    def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session, or None."""
        self._wait_for_writes(session_id)
        return self._run(calls.read_session(session_id))

    def list_sessions(
        self, limit: int | None = None, *, page_size: int = calls.MAX_PAGE_SIZE, **kwargs: Any
    ) -> list[Session]:
        """Sessions newest first: all of them, or the ``limit`` newest.

        Takes one request per ``page_size`` sessions (at most 1000, the server's largest page).
        """
        listing = calls.SessionListing(limit, page_size)
        self._wait_for_writes(None)
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
        self._wait_for_writes(session_id)
        self._run(calls.update_session(session_id, labels, title))

    def delete_session(self, session_id: str, **kwargs: Any) -> None:
        """Deletes the session with all it holds; raises ``SessionNotFoundError`` if it is missing."""
        self._wait_for_writes(session_id)
        self._run(calls.delete_session(session_id))

    def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Creates the agent; raises ``SessionNotFoundError`` without the session."""
        self._wait_for_writes(session_id)
        self._run(calls.create_agent(session_id, session_agent))

    def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent, or None (also when the session is missing)."""
        self._wait_for_writes(session_id)
        return self._run(calls.read_agent(session_id, agent_id))

    def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replaces the agent's states, keeping its created_at (also set on ``session_agent``)."""
        call = calls.update_agent(session_id, session_agent)
        if self._write_behind is None:
            self._run(call)
        else:
            self._write_behind.add(session_id, call)

    def delete_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> None:
        """Deletes the agent and its messages; raises ``SessionNotFoundError`` if it is missing."""
        self._wait_for_writes(session_id)
        self._run(calls.delete_agent(session_id, agent_id))

    def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Stores the message; resending it unchanged is harmless, changed is ``SessionConflictError``."""
        call = calls.create_message(session_id, agent_id, session_message)
        if self._write_behind is None:
            self._run(call)
        else:
            self._write_behind.add(session_id, call, appends_to=agent_id)

    def append_messages(
        self, session_id: str, agent_id: str, messages: Sequence[SessionMessage], **kwargs: Any
    ) -> None:
        """Stores several messages in one request and one transaction: all of them or none."""
        self._wait_for_writes(session_id)
        self._run(calls.append_messages(session_id, agent_id, messages))

    def watch_messages(
        self, session_id: str, agent_id: str, after: int | None = None
    ) -> Iterator[SessionMessage]:
        """The agent's messages in messageId order, as they are written, from any server replica:
        first the stored ones after ``after`` (-1: all of them), then each new one; with ``after``
        None only those written from now on. A generator that blocks until the next message;
        it reconnects by itself and resumes after the last message it gave, so none is missed or
        repeated, and ends only with a ``GraphQLSessionError`` the server's answer makes final
        (credentials refused, a bad argument). ``close()`` the generator (or leave its ``for``
        loop) to close the websocket::

            for message in repo.watch_messages("s-1", "support", after=-1):
                print(message.message_id, message.message["role"])
        """

        async def last_message_id() -> int:
            return await asyncio.to_thread(self._run, calls.last_message_id(session_id, agent_id))

        return watching.watch_messages_blocking(
            watching.watch_messages(
                self.url, self._headers, self._token_provider, session_id, agent_id, after, last_message_id
            )
        )

    def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """The message, or None."""
        self._wait_for_writes(session_id)
        return self._run(calls.read_message(session_id, agent_id, message_id))

    def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Replaces the message's content (a redaction), keeping its created_at."""
        call = calls.update_message(session_id, agent_id, session_message)
        if self._write_behind is None:
            self._run(call)
        else:
            self._write_behind.add(session_id, call)

    def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """The agent's messages by message id, from position ``offset``, at most ``limit`` of them.

        A missing agent or session has none: ``[]``.
        """
        listing = calls.MessageListing(session_id, agent_id, limit, offset, self._message_page_size)
        self._wait_for_writes(session_id)
        while (call := listing.next_call()) is not None:
            try:
                self._run(call)
            except GraphQLSessionError as failure:
                if not listing.smaller_pages(failure):
                    raise
        return listing.messages

    def create_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Stores the Graph's or Swarm's ``serialize_state()`` under its id."""
        self._wait_for_writes(session_id)
        self._run(calls.create_multi_agent(session_id, multi_agent))

    def read_multi_agent(self, session_id: str, multi_agent_id: str, **kwargs: Any) -> dict[str, Any] | None:
        """The stored state exactly as written, or None."""
        self._wait_for_writes(session_id)
        return self._run(calls.read_multi_agent(session_id, multi_agent_id))

    def update_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Replaces the stored state with ``serialize_state()``; keeps its created_at."""
        self._wait_for_writes(session_id)
        self._run(calls.update_multi_agent(session_id, multi_agent))
