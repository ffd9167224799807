"""What each repository method sends and how it reads the answer.

The sync and async repositories share these: a method builds its ``Call`` here (checking its
arguments before anything is sent), the repository executes it and hands the result's data to
``Call.result``. Which calls are ``retry_safe`` decides what the repositories may send twice, and
``Attempts`` what they do after each failure.
"""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gql import GraphQLRequest
from strands.types.session import Session, SessionAgent, SessionMessage

from client import mapping
from client.answers import collector_held
from client.backoff import Backoff
from client.errors import (
    RESPONSE_TOO_LARGE,
    GraphQLSessionError,
    SessionAlreadyExistsError,
    SessionBadInputError,
    SessionRateLimitedError,
    SessionUnauthenticatedError,
)
from client.failures import from_failure, unreadable_answer
from client.operations import (
    APPEND_MESSAGES,
    CREATE_AGENT,
    CREATE_MESSAGE,
    CREATE_MULTI_AGENT,
    CREATE_SESSION,
    DELETE_AGENT,
    DELETE_SESSION,
    LAST_MESSAGE_ID,
    LIST_MESSAGES,
    LIST_SESSIONS,
    READ_AGENT,
    READ_MESSAGE,
    READ_MULTI_AGENT,
    READ_SESSION,
    UPDATE_AGENT,
    UPDATE_MESSAGE,
    UPDATE_MULTI_AGENT,
    UPDATE_SESSION,
    Operation,
    append_messages_of_agents,
)

if TYPE_CHECKING:
    from strands.multiagent.base import MultiAgentBase

T = TypeVar("T")
Data = dict[str, Any]

MAX_PAGE_SIZE = 1000
"""The server's largest page: listing up to this many sessions takes one round trip."""
MAX_LIST_SIZE = 10_000
"""The server's default largest list of messages: restoring up to this many takes one round trip."""

PATH_SEPARATORS = ("/", "\\")

RESEND_NOW = 0.0


@dataclass(frozen=True)
class Call(Generic[T]):
    """One GraphQL operation with its variables, and how to turn its data into the method's result."""

    operation: Operation
    variables: Data
    read: Callable[[Data], T]
    retry_safe: bool = False
    """Sending it twice has the effect of sending it once (reads; message creates, by the server's rule)."""
    confirm: "Call[bool] | None" = None
    """For a create whose answer may have been lost: reads what is stored and says whether it is what
    this call sent. A resent create that meets ALREADY_EXISTS then succeeds if the stored thing is its
    own, so a lost answer never leaves a half-written agent behind (only set on calls returning None)."""

    @property
    def name(self) -> str:
        return self.operation.name

    def may_retry(self, failure: GraphQLSessionError) -> bool:
        """Whether to send the call again after ``failure``, a failure retrying may cure: every call
        may when the server did nothing with it (a refused connection, RATE_LIMITED); otherwise
        only retry-safe ones."""
        return failure.retryable and (self.retry_safe or self.confirm is not None or failure.never_executed)

    def request(self) -> GraphQLRequest:
        return self.operation.request(self.variables)

    def result(self, data: Data) -> T:
        """``read(data)``, where any failure is a ``SessionDataError`` naming the operation.

        Strands expects only ``SessionException`` from a repository; a bare error (a value nested
        too deeply for Strands' recursive decoder raises RecursionError) would leave an agent that
        can never be restored without saying why.
        """
        try:
            with collector_held():  # a page of messages makes tens of thousands of objects
                return self.read(data)
        except GraphQLSessionError:
            raise
        except Exception as error:
            raise unreadable_answer(self.name, error) from error


class Attempts(Generic[T]):
    """What a repository does after each failed attempt of one call, shared by the sync and async ones.

    ``failed`` answers with a read to run (its True means this call's own earlier attempt was
    stored, see ``Call.confirm``) or with seconds to wait before sending again; when the failure is
    final it raises it. The repository asks its token provider before every attempt, so
    ``RESEND_NOW`` after UNAUTHENTICATED (once per call, when ``refreshable``) is how a token that
    just expired gets replaced. With a ``deadline`` (``time.monotonic()``), the call is resent until
    then, the last time at the deadline, and a failure after it is final, whatever retries the
    backoff has left.
    """

    def __init__(
        self,
        call: Call[T],
        backoff: Backoff,
        url: str,
        *,
        refreshable: bool = False,
        deadline: float | None = None,
    ) -> None:
        self.call = call
        self.backoff = backoff
        self.url = url
        self.deadline = deadline
        self.count = 0
        self.retries = 0  # resends charged to the backoff's budget; a token refresh is not one
        self.may_be_stored = False  # whether an earlier attempt may have reached the server
        self.may_refresh = refreshable
        self.failure: GraphQLSessionError | None = None

    def failed(self, error: Exception) -> "Call[bool] | float":
        self.count += 1
        failure = self.failure = from_failure(error, self.url, self.call.name, self.count)
        if (
            self.may_be_stored
            and self.call.confirm is not None
            and isinstance(failure, SessionAlreadyExistsError)
        ):
            return self.call.confirm
        self.may_be_stored = self.may_be_stored or not failure.never_executed
        if isinstance(failure, SessionUnauthenticatedError) and self.may_refresh:
            # The server did nothing with a request it refused, so resending is safe for every call.
            self.may_refresh = False
            return RESEND_NOW
        if not self.call.may_retry(failure):
            raise failure
        self.retries += 1
        asked = failure.retry_after if isinstance(failure, SessionRateLimitedError) else None
        delay = self.backoff.delay(self.retries, asked)
        if delay is None:
            raise failure
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise failure
            delay = min(delay, left)  # one last attempt at the deadline
        return delay

    def not_confirmed(self) -> GraphQLSessionError:
        """The failure to raise when the stored thing turned out not to be this call's."""
        assert self.failure is not None
        return self.failure


def check_id(value: str, kind: str) -> str:
    """Strands' own stores refuse ids with path separators before touching storage, and so does this one.

    Both separators are refused on every platform, as the server does, so an id that works here
    works with every store.
    """
    if not isinstance(value, str):
        raise ValueError(f"{kind}_id={value!r} | id must be a string")
    if any(separator in value for separator in PATH_SEPARATORS):
        raise ValueError(f"{kind}_id={value} | id cannot contain path separators")
    return value


def check_message_id(message_id: int) -> int:
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ValueError(f"message_id=<{message_id}> | message id must be an integer")
    return message_id


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str] | None:
    """Labels are names to strings; the server checks the rest (how many, how long) and answers
    BAD_USER_INPUT, as ``SessionBadInputError``, naming the label."""
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise ValueError(f"labels={labels!r} | labels must be a mapping of names to strings")
    for name, value in labels.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(f"labels[{name!r}]={value!r} | label names and values must be strings")
    return dict(labels)


def _ignore(_: Data) -> None:
    return None


@contextmanager
def _encoding(operation: Operation) -> Iterator[None]:
    """Strands' ``to_dict()`` recurses once per level of nesting, so a value nested a few hundred
    levels deep would escape as a bare RecursionError instead of the SessionException Strands expects."""
    try:
        yield
    except RecursionError as error:
        raise _too_deep(operation) from error


def _too_deep(operation: Operation) -> SessionBadInputError:
    return SessionBadInputError(
        f"{operation.name} could not be sent: a value is nested too deeply to encode",
        code="BAD_USER_INPUT",
        operation=operation.name,
    )


def copied(call: Call[T]) -> Call[T]:
    """The call with its own copy of every dict and list in its variables, to be sent later.

    The variables share parts of the objects they were made from (a message's content), which the
    caller may change once the method has returned (Strands edits its agent's messages); a call
    sent later must send what it was given.
    """
    try:
        variables = _json_copy(call.variables)
    except RecursionError as error:
        raise _too_deep(call.operation) from error
    return Call(call.operation, variables, call.read, retry_safe=call.retry_safe, confirm=call.confirm)


def _json_copy(value: Any) -> Any:
    # Strings and numbers cannot change, so they are shared: a few microseconds per message.
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value


def create_session(session: Session, labels: dict[str, str] | None = None) -> Call[Session]:
    check_id(session.session_id, "session")
    return Call(
        CREATE_SESSION,
        {"session": mapping.session_input(session, labels)},
        lambda data: mapping.session_from_result(data["createSession"]),
    )


def update_session(session_id: str, labels: Mapping[str, str] | None, title: str | None) -> Call[None]:
    if labels is None and title is None:
        raise ValueError("update_session needs labels or title (or both)")
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title={title!r} | title must be a string")
    variables = {"sessionId": check_id(session_id, "session"), "labels": check_labels(labels), "title": title}
    # Setting the same labels and title twice leaves what setting them once does.
    return Call(UPDATE_SESSION, variables, _ignore, retry_safe=True)


def read_session(session_id: str) -> Call[Session | None]:
    def read(data: Data) -> Session | None:
        found = data["session"]
        return None if found is None else mapping.session_from_result(found)

    return Call(READ_SESSION, {"sessionId": check_id(session_id, "session")}, read, retry_safe=True)


def delete_session(session_id: str) -> Call[None]:
    return Call(DELETE_SESSION, {"sessionId": check_id(session_id, "session")}, _ignore)


def _agent_variables(operation: Operation, session_id: str, session_agent: SessionAgent) -> Data:
    check_id(session_agent.agent_id, "agent")
    with _encoding(operation):
        agent = mapping.agent_input(session_agent)
    return {"sessionId": check_id(session_id, "session"), "agent": agent}


def create_agent(session_id: str, session_agent: SessionAgent) -> Call[None]:
    variables = _agent_variables(CREATE_AGENT, session_id, session_agent)
    sent = variables["agent"]

    def is_this_agent(data: Data) -> bool:
        stored = data["agent"]
        return stored is not None and all(
            stored[name] == sent[name] for name in ("state", "conversationManagerState", "internalState")
        )

    confirm = Call(READ_AGENT, _agent_key(session_id, session_agent.agent_id), is_this_agent, retry_safe=True)
    return Call(CREATE_AGENT, variables, _ignore, confirm=confirm)


def read_agent(session_id: str, agent_id: str) -> Call[SessionAgent | None]:
    def read(data: Data) -> SessionAgent | None:
        found = data["agent"]
        return None if found is None else mapping.agent_from_result(found)

    return Call(READ_AGENT, _agent_key(session_id, agent_id), read, retry_safe=True)


def update_agent(session_id: str, session_agent: SessionAgent) -> Call[None]:
    def keep_created_at(data: Data) -> None:
        # As Strands' file and S3 stores do: the caller's object ends up with the stored creation time.
        session_agent.created_at = data["updateAgent"]["createdAt"]

    return Call(UPDATE_AGENT, _agent_variables(UPDATE_AGENT, session_id, session_agent), keep_created_at)


def delete_agent(session_id: str, agent_id: str) -> Call[None]:
    return Call(DELETE_AGENT, _agent_key(session_id, agent_id), _ignore)


def _agent_key(session_id: str, agent_id: str) -> Data:
    return {"sessionId": check_id(session_id, "session"), "agentId": check_id(agent_id, "agent")}


def _message_variables(
    operation: Operation, session_id: str, agent_id: str, session_message: SessionMessage
) -> Data:
    check_message_id(session_message.message_id)
    with _encoding(operation):
        message = mapping.message_input(session_message)
    return {**_agent_key(session_id, agent_id), "message": message}


def create_message(session_id: str, agent_id: str, session_message: SessionMessage) -> Call[None]:
    variables = _message_variables(CREATE_MESSAGE, session_id, agent_id, session_message)
    # The server stores a resent message with equal content once and answers as for the first.
    return Call(CREATE_MESSAGE, variables, _ignore, retry_safe=True)


def append_messages(session_id: str, agent_id: str, messages: Sequence[SessionMessage]) -> Call[None]:
    for message in messages:
        check_message_id(message.message_id)
    with _encoding(APPEND_MESSAGES):
        inputs = [mapping.message_input(message) for message in messages]
    return append_message_inputs(session_id, agent_id, inputs)


def append_message_inputs(session_id: str, agent_id: str, inputs: list[Data]) -> Call[None]:
    """``append_messages`` of messages already encoded (``create_message`` calls' ``message`` variables)."""
    variables = {**_agent_key(session_id, agent_id), "messages": inputs}
    # Each message follows createMessage's rule: resending one stored with equal content succeeds.
    return Call(APPEND_MESSAGES, variables, _ignore, retry_safe=True)


def append_message_inputs_of_agents(agents: Sequence[tuple[str, str, list[Data]]]) -> Call[None]:
    """``append_message_inputs`` for several agents (session id, agent id, encoded messages) in one
    request, stored in that order; like each of them, safe to resend."""
    variables: Data = {}
    for number, (session_id, agent_id, inputs) in enumerate(agents):
        key = _agent_key(session_id, agent_id)
        variables |= {f"s{number}": key["sessionId"], f"a{number}": key["agentId"], f"m{number}": inputs}
    return Call(append_messages_of_agents(len(agents)), variables, _ignore, retry_safe=True)


def read_message(session_id: str, agent_id: str, message_id: int) -> Call[SessionMessage | None]:
    def read(data: Data) -> SessionMessage | None:
        found = data["message"]
        return None if found is None else _message_from_result(found)

    variables = {**_agent_key(session_id, agent_id), "messageId": check_message_id(message_id)}
    return Call(READ_MESSAGE, variables, read, retry_safe=True)


def last_message_id(session_id: str, agent_id: str) -> Call[int]:
    """The agent's highest message id; -1 when it has no message (or does not exist yet)."""

    def read(data: Data) -> int:
        agent = data["agent"]
        last = None if agent is None else agent["lastMessage"]
        return -1 if last is None else int(last["messageId"])

    return Call(LAST_MESSAGE_ID, _agent_key(session_id, agent_id), read, retry_safe=True)


def update_message(session_id: str, agent_id: str, session_message: SessionMessage) -> Call[None]:
    def keep_created_at(data: Data) -> None:
        session_message.created_at = data["updateMessage"]["createdAt"]

    variables = _message_variables(UPDATE_MESSAGE, session_id, agent_id, session_message)
    return Call(UPDATE_MESSAGE, variables, keep_created_at)


def _message_from_result(data: Data) -> SessionMessage:
    try:
        return mapping.message_from_result(data)
    except Exception as error:
        # Says which message operators must look at when one of many cannot be read.
        error.add_note(f"message id {data.get('messageId') if isinstance(data, dict) else None!r}")
        raise


def list_messages(
    session_id: str, agent_id: str, limit: int | None, offset: int
) -> Call[list[SessionMessage]]:
    """One page of messages; ``MessageListing`` pages through all of them."""

    def read(data: Data) -> list[SessionMessage]:
        # A missing agent (or session) has no messages, as in Strands' S3 store; Strands' own
        # RepositorySessionManager only lists the messages of an agent it has just read.
        agent = data["agent"]
        return [] if agent is None else [_message_from_result(m) for m in agent["messages"]]

    variables = {**_agent_key(session_id, agent_id), "offset": offset, "limit": limit}
    return Call(LIST_MESSAGES, variables, read, retry_safe=True)


@dataclass
class MessageListing:
    """An agent's messages from ``offset``, at most ``limit`` (None: all), ``page_size`` per request.

    The server answers at most its ``SESSION_GRAPHQL_MAX_LIST_SIZE`` messages per list, so the
    repositories execute each ``next_call()`` until it returns None, then take ``messages``.
    """

    session_id: str
    agent_id: str
    limit: int | None
    offset: int
    page_size: int = MAX_LIST_SIZE
    messages: list[SessionMessage] = field(default_factory=list)
    _done: bool = False

    def __post_init__(self) -> None:
        # A negative limit or offset is the server's to refuse, naming the argument.
        if self.page_size < 1:
            raise ValueError(f"message_page_size must be positive, got {self.page_size}")
        self._done = self.limit == 0

    def smaller_pages(self, failure: GraphQLSessionError) -> bool:
        """After ``failure`` of the last call, whether to ask again in pages half as large: a page of
        large messages may be over the server's answer budget (RESPONSE_TOO_LARGE)."""
        if failure.code != RESPONSE_TOO_LARGE or self.page_size == 1:
            return False
        self.page_size //= 2
        return True

    def next_call(self) -> Call[None] | None:
        if self._done:
            return None
        wanted = (
            self.page_size if self.limit is None else min(self.page_size, self.limit - len(self.messages))
        )
        page = list_messages(self.session_id, self.agent_id, wanted, self.offset + len(self.messages))

        def read(data: Data) -> None:
            got = page.result(data)
            self.messages.extend(got)
            full = self.limit is not None and len(self.messages) >= self.limit
            self._done = full or len(got) < wanted

        return Call(page.operation, page.variables, read, retry_safe=True)


def _multi_agent_variables(operation: Operation, session_id: str, multi_agent: "MultiAgentBase") -> Data:
    check_id(multi_agent.id, "multi_agent")
    with _encoding(operation):
        state = mapping.multi_agent_input(multi_agent)
    return {"sessionId": check_id(session_id, "session"), "multiAgent": state}


def create_multi_agent(session_id: str, multi_agent: "MultiAgentBase") -> Call[None]:
    variables = _multi_agent_variables(CREATE_MULTI_AGENT, session_id, multi_agent)

    def is_this_state(data: Data) -> bool:
        stored = data["multiAgent"]
        return stored is not None and stored["state"] == variables["multiAgent"]["state"]

    key = {"sessionId": variables["sessionId"], "multiAgentId": variables["multiAgent"]["multiAgentId"]}
    confirm = Call(READ_MULTI_AGENT, key, is_this_state, retry_safe=True)
    return Call(CREATE_MULTI_AGENT, variables, _ignore, confirm=confirm)


def read_multi_agent(session_id: str, multi_agent_id: str) -> Call[dict[str, Any] | None]:
    def read(data: Data) -> dict[str, Any] | None:
        # The state exactly as stored, bytes still in their envelopes: what Strands' file and S3
        # stores return, and what Graph and Swarm's deserialize_state() decode themselves.
        found = data["multiAgent"]
        return None if found is None else dict(found["state"])

    variables = {
        "sessionId": check_id(session_id, "session"),
        "multiAgentId": check_id(multi_agent_id, "multi_agent"),
    }
    return Call(READ_MULTI_AGENT, variables, read, retry_safe=True)


def update_multi_agent(session_id: str, multi_agent: "MultiAgentBase") -> Call[None]:
    return Call(
        UPDATE_MULTI_AGENT, _multi_agent_variables(UPDATE_MULTI_AGENT, session_id, multi_agent), _ignore
    )


@dataclass
class SessionListing:
    """Pages through the ``sessions`` connection, newest first, until ``limit`` sessions or the end.

    The repositories execute each ``next_call()`` until it returns None, then take ``sessions``.
    """

    limit: int | None = None
    page_size: int = MAX_PAGE_SIZE
    sessions: list[Session] = field(default_factory=list)
    _after: str | None = None
    _done: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must not be negative, got {self.limit}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size}")
        self._done = self.limit == 0

    def next_call(self) -> Call[None] | None:
        if self._done:
            return None
        wanted = self.page_size if self.limit is None else self.limit - len(self.sessions)
        variables = {"first": min(wanted, self.page_size), "after": self._after}
        return Call(LIST_SESSIONS, variables, self._read_page, retry_safe=True)

    def _read_page(self, data: Data) -> None:
        page = data["sessions"]
        self.sessions.extend(mapping.session_from_result(node) for node in page["nodes"])
        self._after = page["pageInfo"]["endCursor"]
        full = self.limit is not None and len(self.sessions) >= self.limit
        self._done = full or not page["pageInfo"]["hasNextPage"]
