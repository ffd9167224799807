"""Write-behind: the writes a repository has accepted but not yet delivered, in the order made.

The sync repository's sender thread (``client.write_behind.threaded``) and the async one's sender task
(``client.write_behind.asynchronous``) share this queue and its rules; each guards it in its own way (a
lock, the event loop). A write stays in the queue, counted against ``max_pending``, until it is
delivered or has failed for good, so a session has pending writes exactly while its writes are
not settled yet.
"""

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context
from opentelemetry.context import Context

from client import calls
from client.errors import (
    GraphQLSessionError,
    SessionBadInputError,
    SessionConflictError,
    SessionLimitError,
)

BATCH_SIZE = 100
"""Most ``create_message`` calls of one agent sent as one ``appendMessages`` (one run)."""
AGENTS_PER_REQUEST = 20
"""Most runs (agents) in one request, within the server's default of 50 aliases."""
MESSAGES_PER_REQUEST = 500
"""Most messages in one request, whatever the agents."""
NARROWED_BY = frozenset(
    {"TOO_MANY_ALIASES", "TOO_MANY_TOKENS", "DOCUMENT_TOO_LARGE", "QUERY_TOO_COSTLY", "PAYLOAD_TOO_LARGE"}
)
"""Codes with which a server refuses a request of several runs for its size or shape: the queue then
puts half as many runs in its next ones."""

DEFAULT_MAX_PENDING = 1000
DEFAULT_RETRY_SECONDS = 60.0


@dataclass(slots=True)
class PendingWrite:
    session_id: str
    call: calls.Call[None]
    appends_to: str | None = None
    """The agent of a ``create_message``: those of one agent queued together go in one ``appendMessages``."""
    trace_context: Context = field(default_factory=context.get_current)
    """The caller's OpenTelemetry context as it queued the write, whose trace the write is sent in;
    a batch goes in its first write's."""


Run = list[PendingWrite]
"""Writes sent as one: a write, or ``create_message`` calls of one agent as one ``appendMessages``."""
Outcome = tuple[int, Exception | None]
"""Of a run: how many of its writes were stored, and the failure of the next one (None: no failure,
and, when not all were stored, the run was not sent, as its session's writes failed before it)."""


def run_call(run: Run) -> calls.Call[None]:
    """One request for a run: the write itself, or the messages as one ``appendMessages``."""
    if len(run) == 1:
        return run[0].call
    first = run[0]
    assert first.appends_to is not None
    return calls.append_message_inputs(first.session_id, first.appends_to, _inputs(run))


def batch_call(batch: list[Run]) -> calls.Call[None]:
    """One request for ``next_batch()``: its run's, or the runs' ``appendMessages`` in one document."""
    if len(batch) == 1:
        return run_call(batch[0])
    agents = []
    for run in batch:
        assert run[0].appends_to is not None
        agents.append((run[0].session_id, run[0].appends_to, _inputs(run)))
    return calls.append_message_inputs_of_agents(agents)


def _inputs(run: Run) -> list[dict[str, Any]]:
    return [write.call.variables["message"] for write in run]


Request = tuple[calls.Call[None], Context]
"""A request a delivery makes: the call, and the context whose trace it goes in."""
Delivery = Generator[Request, Exception | None, tuple[list[Outcome], Exception | None]]
"""``delivery(batch)``: yields each request to send, is sent back its failure (None: stored)."""


def delivery(batch: list[Run]) -> Delivery:
    """How ``batch`` (``WriteQueue.next_batch``) is delivered, without the sending, which the threaded
    and the asynchronous sender each do their way: its runs in one request or, when that fails,
    each run by itself, leaving out the runs of a session once one of its writes failed. Returns
    each run's outcome, and why the runs did not go together."""
    together = None
    if len(batch) > 1:
        together = yield batch_call(batch), batch[0][0].trace_context
        if together is None:
            return [(len(run), None) for run in batch], None
        # appendMessages is safe to resend, so the runs stored before the failure may go again.
    outcomes: list[Outcome] = []
    failed: set[str] = set()
    for run in batch:
        outcome: Outcome = (0, None)
        if run[0].session_id not in failed:
            outcome = yield from _run_delivery(run)
        if outcome[1] is not None:
            failed.add(run[0].session_id)
        outcomes.append(outcome)
    return outcomes, together


def _run_delivery(run: Run) -> Generator[Request, Exception | None, Outcome]:
    """Sends ``run``; returns how many of its writes were stored, and the next one's failure."""
    failure = yield run_call(run), run[0].trace_context
    if failure is None:
        return len(run), None
    if len(run) == 1 or not resent_one_by_one(failure):
        return 0, failure
    for stored, write in enumerate(run):
        failure = yield write.call, write.trace_context
        if failure is not None:
            return stored, failure
    return len(run), None


def resent_one_by_one(failure: Exception) -> bool:
    """Whether a batch the server refused is sent again one message at a time.

    ``appendMessages`` stores all of its messages or none, so a refusal that may concern a single
    message (its content, its size, its id) would otherwise cost the ones before it; sent alone,
    those are stored and the refused one fails by itself, as without write-behind.
    """
    return isinstance(failure, SessionConflictError | SessionBadInputError | SessionLimitError)


class WriteQueue:
    """Pending writes in order, and the failures of those that could not be delivered."""

    def __init__(self, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.max_pending = max_pending
        self._writes: deque[PendingWrite] = deque()
        self._by_session: dict[str, int] = {}
        self._failures: dict[str, Exception] = {}  # oldest first, one per session at most
        self.agents_per_request = AGENTS_PER_REQUEST
        """Most runs in one request: ``AGENTS_PER_REQUEST``, or fewer once the server refused that many."""

    def __len__(self) -> int:
        return len(self._writes)

    def is_full(self) -> bool:
        return len(self._writes) >= self.max_pending

    def pending(self, session_id: str | None) -> bool:
        """Whether a write of the session (None: of any session) is not settled yet."""
        return bool(self._writes) if session_id is None else session_id in self._by_session

    def add(self, write: PendingWrite) -> None:
        self._writes.append(write)
        self._by_session[write.session_id] = self._by_session.get(write.session_id, 0) + 1

    def next_batch(self) -> list[Run]:
        """The runs to send next, left in the queue until ``settle``: the first write alone, or, when
        it is a ``create_message``, the ones that follow it up to the first other write, grouped by
        agent (up to ``BATCH_SIZE`` each, ``AGENTS_PER_REQUEST`` agents and ``MESSAGES_PER_REQUEST``
        in all). The runs are the first writes of the queue, and each session's writes keep their
        order in them: a session's writes that change agent twice end the batch instead."""
        first = self._writes[0]
        if first.appends_to is None:
            return [[first]]
        batch: list[Run] = []
        latest: dict[str, Run] = {}  # each session's latest run
        agents: set[tuple[str, str]] = set()
        for count, write in enumerate(self._writes):
            if write.appends_to is None or count == MESSAGES_PER_REQUEST:
                break
            run = latest.get(write.session_id)
            if run is not None and run[0].appends_to == write.appends_to:
                if len(run) == BATCH_SIZE:
                    break
                run.append(write)
                continue
            agent = (write.session_id, write.appends_to)
            if agent in agents or len(batch) == self.agents_per_request:
                break
            agents.add(agent)
            latest[write.session_id] = run = [write]
            batch.append(run)
        return batch

    def settle(
        self, batch: list[Run], outcomes: list[Outcome], refused_together: Exception | None = None
    ) -> None:
        """Takes ``batch`` (``next_batch()``) out of the queue, by each run's outcome: its first
        writes delivered; with a failure, the next one failed: it, and every later write of its
        session, leave the queue unsent. ``refused_together``: why the runs sent as one request were
        not, which, for the request's size or shape, narrows the next batches."""
        if isinstance(refused_together, GraphQLSessionError) and refused_together.code in NARROWED_BY:
            self.agents_per_request = max(1, min(self.agents_per_request, len(batch)) // 2)
        sent = [self._writes.popleft() for _ in range(sum(len(run) for run in batch))]
        for write in sent:
            self._forget(write)
        for run, (delivered, failure) in zip(batch, outcomes, strict=True):
            if failure is None:
                continue
            session_id = run[0].session_id
            stored = sum(
                done
                for other, (done, _) in zip(batch, outcomes, strict=True)
                if other[0].session_id == session_id
            )
            unsent = sum(write.session_id == session_id for write in sent) - stored - 1
            self._fail(run[delivered], failure, unsent)

    def _fail(self, failed: PendingWrite, failure: Exception, unsent: int) -> None:
        """``failed`` was not stored, nor ``unsent`` later writes of its session already out of the
        queue: every later one still in it leaves it unsent."""
        session_id = failed.session_id
        later = [write for write in self._writes if write.session_id == session_id]
        if later:
            self._writes = deque(write for write in self._writes if write.session_id != session_id)
            del self._by_session[session_id]
        failure.add_note(
            f"write-behind: this {failed.call.name} of session {session_id!r} was not stored, nor the "
            f"{unsent + len(later)} writes of the session queued after it; every earlier write of the "
            "session was"
        )
        self._failures[session_id] = failure

    def _forget(self, write: PendingWrite) -> None:
        left = self._by_session[write.session_id] - 1
        if left:
            self._by_session[write.session_id] = left
        else:
            del self._by_session[write.session_id]

    def take_failure(self, session_id: str | None) -> Exception | None:
        """The session's failure (None: the oldest of any session), once: the next take is None."""
        if session_id is not None:
            return self._failures.pop(session_id, None)
        if not self._failures:
            return None
        return self._failures.pop(next(iter(self._failures)))

    def raise_failure(self, session_id: str) -> None:
        """Raises the session's failure not raised yet, if there is one (taking it, as ``take_failure``)."""
        failure = self.take_failure(session_id)
        if failure is not None:
            raise failure

    def take_failures(self) -> Exception | None:
        """The oldest failure, noting every other one in it; none is left to take afterwards."""
        first = self.take_failure(None)
        while (other := self.take_failure(None)) is not None:
            assert first is not None
            first.add_note(f"write-behind: also not delivered: {other}")
        return first

    def has_failures(self) -> bool:
        return bool(self._failures)
