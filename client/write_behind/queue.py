"""Write-behind: the writes a repository has accepted but not yet delivered, in the order made.

The sync repository's sender thread (``client.write_behind.threaded``) and the async one's sender task
(``client.write_behind.asynchronous``) share this queue and its rules; each guards it in its own way (a
lock, the event loop). A write stays in the queue, counted against ``max_pending``, until it is
delivered or has failed for good, so a session has pending writes exactly while its writes are
not settled yet.
"""

from collections import deque
from dataclasses import dataclass, field

from opentelemetry import context
from opentelemetry.context import Context

from client import calls
from client.errors import SessionBadInputError, SessionConflictError, SessionLimitError

BATCH_SIZE = 100
"""Most consecutive ``create_message`` calls of one agent sent as one ``appendMessages``."""

DEFAULT_MAX_PENDING = 1000
DEFAULT_RETRY_SECONDS = 60.0


@dataclass(slots=True)
class PendingWrite:
    session_id: str
    call: calls.Call[None]
    appends_to: str | None = None
    """The agent of a ``create_message``: consecutive ones of one agent go in one ``appendMessages``."""
    trace_context: Context = field(default_factory=context.get_current)
    """The caller's OpenTelemetry context as it queued the write, whose trace the write is sent in;
    a batch goes in its first write's."""


def batch_call(batch: list[PendingWrite]) -> calls.Call[None]:
    """One request for ``next_batch()``: the write itself, or the messages as one ``appendMessages``."""
    if len(batch) == 1:
        return batch[0].call
    first = batch[0]
    assert first.appends_to is not None
    inputs = [write.call.variables["message"] for write in batch]
    return calls.append_message_inputs(first.session_id, first.appends_to, inputs)


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

    def next_batch(self) -> list[PendingWrite]:
        """The writes to send next, left in the queue until ``settle``: the first one, with the
        ``create_message`` calls of the same agent right behind it when it is one."""
        first = self._writes[0]
        batch = [first]
        if first.appends_to is None:
            return batch
        for write in self._writes:
            if write is first:
                continue
            same_agent = write.session_id == first.session_id and write.appends_to == first.appends_to
            if not same_agent or len(batch) == BATCH_SIZE:
                break
            batch.append(write)
        return batch

    def settle(self, batch: list[PendingWrite], delivered: int, failure: Exception | None) -> None:
        """Takes the first ``delivered`` writes of ``batch`` out as delivered; with a ``failure``,
        the next one failed: it, and every later write of its session, leave the queue unsent."""
        for _ in range(delivered):
            self._forget(self._writes.popleft())
        if failure is None:
            return
        failed = self._writes.popleft()
        self._forget(failed)
        session_id = failed.session_id
        later = [write for write in self._writes if write.session_id == session_id]
        if later:
            self._writes = deque(write for write in self._writes if write.session_id != session_id)
            del self._by_session[session_id]
        failure.add_note(
            f"write-behind: this {failed.call.name} of session {session_id!r} was not stored, nor the "
            f"{len(later)} writes of the session queued after it; every earlier write of the session was"
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
