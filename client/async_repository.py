"""``AsyncGraphQLSessionRepository``: the repository's methods as coroutines, for code on an event loop."""

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
from gql import Client
from gql.client import AsyncClientSession
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError
from strands.types.session import Session, SessionAgent, SessionMessage

from client import calls, credentials, failures, watching
from client.answers import decode_answer
from client.backoff import Backoff
from client.credentials import AsyncTokenProvider
from client.errors import GraphQLSessionError
from client.repository_base import IDLE_CONNECTION_SECONDS, RepositoryBase
from client.trace_context import with_trace_context
from client.write_behind.asynchronous import AsyncWriteBehind

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

T = TypeVar("T")


class AsyncGraphQLSessionRepository(RepositoryBase[AsyncTokenProvider, AsyncWriteBehind]):
    """``GraphQLSessionRepository``'s methods as coroutines, with the same arguments, results and errors.

    Strands' session managers call their repository synchronously, so this one is for code that
    reads or writes sessions itself without blocking its event loop. It uses gql's aiohttp
    transport (about half the client CPU per call of gql's async httpx transport) with kept-alive
    connections, opened on the first call. Use one instance from one event loop, and close it with
    ``await repository.aclose()`` or ``async with``.

    ``token`` works as for ``GraphQLSessionRepository``: a fixed bearer token, or a provider called
    before every request and once more after an UNAUTHENTICATED answer. Here the provider may also
    be a coroutine function (or return any awaitable), e.g. one that refreshes a JWT over HTTP
    when its cached token is about to expire; concurrent calls may await it at the same time, so
    it should share one refresh among them::

        repo = AsyncGraphQLSessionRepository(url, token=identity.fresh_token)  # async def fresh_token()

    ``write_behind=True``, ``max_pending`` and ``write_behind_retry_seconds`` work as for
    ``GraphQLSessionRepository`` (read its docstring for what is delivered when, and what a crash
    loses), with an asyncio task instead of a thread: ``create_message``, ``update_agent`` and
    ``update_message`` return once the write is queued, and a full queue waits without blocking
    the loop. Nothing delivers at exit: ``await repository.aclose()`` (or ``flush()``) before the
    event loop ends, or use ``async with``, which does; when ``asyncio.run`` returns first, it
    cancels the sender and the writes still queued are lost, as in a crash.
    """

    def _write_behind_sender(self, max_pending: int) -> AsyncWriteBehind:
        return AsyncWriteBehind(self._deliver, max_pending, self.url)

    def _open(self, headers: dict[str, str], timeout: float) -> None:
        self._session_args: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout)}
        transport = AIOHTTPTransport(
            self.url,
            headers=headers,
            client_session_args=self._session_args,
            json_deserialize=decode_answer,
        )
        # aiohttp enforces the timeout; gql's own would only race it.
        self._client = Client(transport=transport, execute_timeout=None)
        self._session: AsyncClientSession | None = None
        self._closed = False
        self._connecting = asyncio.Lock()

    async def _connected(self, operation: str) -> AsyncClientSession:
        if self._session is None:
            async with self._connecting:
                if self._closed:
                    raise failures.closed_error(self.url, operation)
                if self._session is None:
                    # aiohttp's connector belongs to the running loop, so it is made here, not in __init__.
                    self._session_args["connector"] = aiohttp.TCPConnector(
                        keepalive_timeout=IDLE_CONNECTION_SECONDS
                    )
                    session = await self._client.connect_async()  # type: ignore[no-untyped-call]  # gql
                    assert isinstance(session, AsyncClientSession)
                    self._session = session
        return self._session

    async def flush(self) -> None:
        """With write-behind, waits until every write made so far is delivered or has failed, and
        raises the oldest failure not raised yet (call again for the next one). Without, returns."""
        if self._write_behind is not None:
            await self._write_behind.flush()

    async def aclose(self) -> None:
        """Delivers the pending writes (as ``flush``), then closes the HTTP connections; later calls
        raise ``SessionTransportError``. Raises the oldest undelivered write's failure (noting the
        others') after closing."""
        try:
            failure = await self._write_behind.aclose() if self._write_behind is not None else None
        finally:
            async with self._connecting:
                self._closed = True
                if self._session is not None:
                    self._session = None
                    await self._client.close_async()  # type: ignore[no-untyped-call]  # gql leaves it bare
        if failure is not None:
            raise failure

    async def __aenter__(self) -> "AsyncGraphQLSessionRepository":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncGraphQLSessionRepository({self.url!r})"

    async def _run(
        self, call: calls.Call[T], backoff: Backoff | None = None, deadline: float | None = None
    ) -> T:
        session = await self._connected(call.name)
        attempts = self._attempts(call, backoff, deadline)
        while True:
            extra_args = with_trace_context(await self._request_args(call.name))
            try:
                data = await session.execute(call.request(), extra_args=extra_args)
            except (TransportError, TimeoutError) as error:
                step = attempts.failed(error)
            else:
                return call.result(data)
            if isinstance(step, calls.Call):
                if await self._run(step):
                    return cast(T, None)  # the earlier attempt stored exactly this; see Call.confirm
                raise attempts.not_confirmed()
            await asyncio.sleep(step)

    async def _deliver(self, call: calls.Call[None]) -> None:
        """How the write-behind task sends a write: retried for ``write_behind_retry_seconds``."""
        await self._run(call, self._delivery_backoff, time.monotonic() + self._delivery_seconds)

    async def _wait_for_writes(self, session_id: str | None) -> None:
        """With write-behind: waits until the session's queued writes (None: every session's) are
        delivered, and raises the failure of one that could not be."""
        if self._write_behind is not None:
            await self._write_behind.wait_for(session_id)

    async def _request_args(self, operation: str) -> dict[str, Any] | None:
        if self._token_provider is None:
            return None
        try:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as error:
            raise credentials.provider_failed(operation, error) from error
        return credentials.request_args(token, operation)

    async def create_session(self, session: Session, **kwargs: Any) -> Session:
        """Creates the session; raises ``SessionAlreadyExistsError`` if its id is taken."""
        await self._wait_for_writes(session.session_id)
        return await self._run(calls.create_session(session, self.labels))

    async def read_session(self, session_id: str, **kwargs: Any) -> Session | None:
        """The session, or None."""
        await self._wait_for_writes(session_id)
        return await self._run(calls.read_session(session_id))

    async def list_sessions(
        self, limit: int | None = None, *, page_size: int = calls.MAX_PAGE_SIZE, **kwargs: Any
    ) -> list[Session]:
        """Sessions newest first: all of them, or the ``limit`` newest, ``page_size`` per request."""
        listing = calls.SessionListing(limit, page_size)
        await self._wait_for_writes(None)
        while (call := listing.next_call()) is not None:
            await self._run(call)
        return listing.sessions

    async def update_session(
        self, session_id: str, *, labels: Mapping[str, str] | None = None, title: str | None = None
    ) -> None:
        """Sets the session's labels (all of them: ``{}`` removes them) and/or its title (``""``
        removes it); raises ``SessionNotFoundError`` if it is missing."""
        await self._wait_for_writes(session_id)
        await self._run(calls.update_session(session_id, labels, title))

    async def delete_session(self, session_id: str, **kwargs: Any) -> None:
        """Deletes the session with all it holds; raises ``SessionNotFoundError`` if it is missing."""
        await self._wait_for_writes(session_id)
        await self._run(calls.delete_session(session_id))

    async def create_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Creates the agent; raises ``SessionNotFoundError`` without the session."""
        await self._wait_for_writes(session_id)
        await self._run(calls.create_agent(session_id, session_agent))

    async def read_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> SessionAgent | None:
        """The agent, or None (also when the session is missing)."""
        await self._wait_for_writes(session_id)
        return await self._run(calls.read_agent(session_id, agent_id))

    async def update_agent(self, session_id: str, session_agent: SessionAgent, **kwargs: Any) -> None:
        """Replaces the agent's states, keeping its created_at (also set on ``session_agent``)."""
        call = calls.update_agent(session_id, session_agent)
        if self._write_behind is None:
            await self._run(call)
        else:
            await self._write_behind.add(session_id, call)

    async def delete_agent(self, session_id: str, agent_id: str, **kwargs: Any) -> None:
        """Deletes the agent and its messages; raises ``SessionNotFoundError`` if it is missing."""
        await self._wait_for_writes(session_id)
        await self._run(calls.delete_agent(session_id, agent_id))

    async def create_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Stores the message; resending it unchanged is harmless, changed is ``SessionConflictError``."""
        call = calls.create_message(session_id, agent_id, session_message)
        if self._write_behind is None:
            await self._run(call)
        else:
            await self._write_behind.add(session_id, call, appends_to=agent_id)

    async def append_messages(
        self, session_id: str, agent_id: str, messages: Sequence[SessionMessage], **kwargs: Any
    ) -> None:
        """Stores several messages in one request and one transaction: all of them or none."""
        await self._wait_for_writes(session_id)
        await self._run(calls.append_messages(session_id, agent_id, messages))

    def watch_messages(
        self, session_id: str, agent_id: str, after: int | None = None
    ) -> AsyncIterator[SessionMessage]:
        """The agent's messages in messageId order, as they are written, from any server replica:
        first the stored ones after ``after`` (-1: all of them), then each new one; with ``after``
        None only those written from now on. Reconnects by itself and resumes after the last
        message it gave, so none is missed or repeated; ends only with a ``GraphQLSessionError``
        the server's answer makes final (credentials refused, a bad argument). Use it with
        ``async for``; leaving the loop closes the websocket::

            async for message in repo.watch_messages("s-1", "support", after=-1):
                print(message.message_id, message.message["role"])
        """

        async def last_message_id() -> int:
            return await self._run(calls.last_message_id(session_id, agent_id))

        return watching.watch_messages(
            self.url, self._headers, self._token_provider, session_id, agent_id, after, last_message_id
        )

    async def read_message(
        self, session_id: str, agent_id: str, message_id: int, **kwargs: Any
    ) -> SessionMessage | None:
        """The message, or None."""
        await self._wait_for_writes(session_id)
        return await self._run(calls.read_message(session_id, agent_id, message_id))

    async def update_message(
        self, session_id: str, agent_id: str, session_message: SessionMessage, **kwargs: Any
    ) -> None:
        """Replaces the message's content (a redaction), keeping its created_at."""
        call = calls.update_message(session_id, agent_id, session_message)
        if self._write_behind is None:
            await self._run(call)
        else:
            await self._write_behind.add(session_id, call)

    async def list_messages(
        self, session_id: str, agent_id: str, limit: int | None = None, offset: int = 0, **kwargs: Any
    ) -> list[SessionMessage]:
        """The agent's messages by message id from position ``offset``, at most ``limit``; or ``[]``."""
        listing = calls.MessageListing(session_id, agent_id, limit, offset, self._message_page_size)
        await self._wait_for_writes(session_id)
        while (call := listing.next_call()) is not None:
            try:
                await self._run(call)
            except GraphQLSessionError as failure:
                if not listing.smaller_pages(failure):
                    raise
        return listing.messages

    async def create_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Stores the Graph's or Swarm's ``serialize_state()`` under its id."""
        await self._wait_for_writes(session_id)
        await self._run(calls.create_multi_agent(session_id, multi_agent))

    async def read_multi_agent(
        self, session_id: str, multi_agent_id: str, **kwargs: Any
    ) -> dict[str, Any] | None:
        """The stored state exactly as written, or None."""
        await self._wait_for_writes(session_id)
        return await self._run(calls.read_multi_agent(session_id, multi_agent_id))

    async def update_multi_agent(self, session_id: str, multi_agent: "MultiAgentBase", **kwargs: Any) -> None:
        """Replaces the stored state with ``serialize_state()``; keeps its created_at."""
        await self._wait_for_writes(session_id)
        await self._run(calls.update_multi_agent(session_id, multi_agent))
