"""The sync repository's write-behind: a queue of accepted writes that one daemon thread delivers.

The thread starts with the first write and ends after ``IDLE_SECONDS`` without any, so an idle or
forgotten repository holds no thread. ``atexit`` delivers what every open one still holds, while
daemon threads still run.
"""

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

from client import calls
from client.failures import closed_error
from client.trace_context import within
from client.write_behind.queue import (
    Outcome,
    PendingWrite,
    Run,
    WriteQueue,
    delivery,
)

logger = logging.getLogger(__name__)

IDLE_SECONDS = 10.0

Send = Callable[[calls.Call[None]], None]


def deliver(batch: list[Run], send: Send) -> tuple[list[Outcome], Exception | None]:
    """Sends ``batch`` as ``delivery`` plans it: each run's outcome, and why the runs did not go together."""
    plan = delivery(batch)
    try:
        call, trace_context = next(plan)
        while True:
            failure = None
            try:
                with within(trace_context):
                    send(call)
            except Exception as error:
                failure = error
            call, trace_context = plan.send(failure)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class ThreadedWriteBehind:
    """Accepts writes at once and delivers them in order through ``send`` (the repository's
    ``_run`` with its delivery budget), from a thread of its own. Safe to use from any thread."""

    def __init__(self, send: Send, max_pending: int, url: str) -> None:
        self._send = send
        self._url = url
        self._queue = WriteQueue(max_pending)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the sender waits for writes
        self._progress = threading.Condition(self._lock)  # callers wait for writes to settle
        self._thread: threading.Thread | None = None
        self._closed = False
        _open.add(self)

    def add(self, session_id: str, call: calls.Call[None], appends_to: str | None = None) -> None:
        """Queues the write, once there is room; first raises the session's undelivered failure."""
        write = PendingWrite(session_id, calls.copied(call), appends_to)
        with self._lock:
            self._raise_failure(session_id, call.name)
            while self._queue.is_full():
                self._progress.wait()
                self._raise_failure(session_id, call.name)
            self._queue.add(write)
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_pending, name="write-behind", daemon=True)
                self._thread.start()
            self._work.notify()

    def _raise_failure(self, session_id: str, operation: str) -> None:
        if self._closed:
            raise closed_error(self._url, operation)
        self._queue.raise_failure(session_id)

    def wait_for(self, session_id: str | None) -> None:
        """Waits until the session's writes (None: every session's) are settled, then raises the
        session's failure not raised yet (None: none)."""
        with self._lock:
            self._progress.wait_for(lambda: not self._queue.pending(session_id))
            failure = None if session_id is None else self._queue.take_failure(session_id)
        if failure is not None:
            raise failure

    def flush(self) -> None:
        """Waits until every write is settled, then raises the oldest failure not raised yet."""
        with self._lock:
            self._progress.wait_for(lambda: not self._queue.pending(None))
            failure = self._queue.take_failure(None)
        if failure is not None:
            raise failure

    def close(self) -> Exception | None:
        """Waits until every write is settled and refuses new ones; answers the failure to raise
        (the oldest, noting the others), so the repository can close its connection first."""
        with self._lock:
            self._progress.wait_for(lambda: not self._queue.pending(None))
            self._closed = True
            self._work.notify()
            failure = self._queue.take_failures()
        _open.discard(self)
        return failure

    def _send_pending(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._closed:
                    self._work.wait(IDLE_SECONDS)
                if not self._queue:
                    self._thread = None
                    return
                batch = self._queue.next_batch()
            outcomes, together = deliver(batch, self._send)
            with self._lock:
                self._queue.settle(batch, outcomes, together)
                self._progress.notify_all()

    def __del__(self) -> None:
        # Never silent: a failure nobody asked for before the repository went away is logged.
        if self._queue.has_failures():
            failure = self._queue.take_failures()
            logger.error("write-behind writes to %s were not delivered: %s", self._url, failure)


_open: "weakref.WeakSet[ThreadedWriteBehind]" = weakref.WeakSet()


@atexit.register
def _deliver_at_exit() -> None:
    for writer in list(_open):
        failure = writer.close()
        if failure is not None:
            logger.error("write-behind writes were not delivered before exit", exc_info=failure)
