"""The async repository's write-behind: a queue of accepted writes that one asyncio task delivers.

Everything here runs on the repository's event loop, so the queue needs no lock. Nothing runs at
exit: the owner must await ``aclose()`` (or ``flush()``) before its loop ends, or the writes still
queued are lost (and logged), as ``asyncio.run`` cancels the sender with every other task.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

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

Send = Callable[[calls.Call[None]], Awaitable[None]]


async def deliver(batch: list[Run], send: Send) -> tuple[list[Outcome], Exception | None]:
    """Sends ``batch`` as ``delivery`` plans it: each run's outcome, and why the runs did not go together."""
    plan = delivery(batch)
    try:
        call, trace_context = next(plan)
        while True:
            failure = None
            try:
                with within(trace_context):
                    await send(call)
            except Exception as error:
                failure = error
            call, trace_context = plan.send(failure)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class AsyncWriteBehind:
    """Accepts writes at once and delivers them in order through ``send``, from a task of its own,
    started with the first write on the running loop."""

    def __init__(self, send: Send, max_pending: int, url: str) -> None:
        self._send = send
        self._url = url
        self._queue = WriteQueue(max_pending)
        self._work = asyncio.Event()
        self._progress = asyncio.Event()  # set, and replaced, each time writes settle
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def add(self, session_id: str, call: calls.Call[None], appends_to: str | None = None) -> None:
        """Queues the write, once there is room; first raises the session's undelivered failure."""
        write = PendingWrite(session_id, calls.copied(call), appends_to)
        self._raise_failure(session_id, call.name)
        while self._queue.is_full():
            await self._settled()
            self._raise_failure(session_id, call.name)
        self._queue.add(write)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_pending(), name="write-behind")
        self._work.set()

    def _raise_failure(self, session_id: str, operation: str) -> None:
        if self._closed:
            raise closed_error(self._url, operation)
        self._queue.raise_failure(session_id)

    async def _settled(self) -> None:
        """Waits until some writes settle. A sender that has stopped (its loop was closed, or it was
        cancelled) would never settle any: then it raises, rather than wait for ever."""
        task = self._task
        assert task is not None
        progress = asyncio.ensure_future(self._progress.wait())
        try:
            await asyncio.wait((progress, task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            progress.cancel()
        if task.done() and self._queue:
            raise closed_error(self._url, "write-behind")

    async def wait_for(self, session_id: str | None) -> None:
        """Waits until the session's writes (None: every session's) are settled, then raises the
        session's failure not raised yet (None: none)."""
        while self._queue.pending(session_id):
            await self._settled()
        failure = None if session_id is None else self._queue.take_failure(session_id)
        if failure is not None:
            raise failure

    async def flush(self) -> None:
        """Waits until every write is settled, then raises the oldest failure not raised yet."""
        await self.wait_for(None)
        failure = self._queue.take_failure(None)
        if failure is not None:
            raise failure

    async def aclose(self) -> Exception | None:
        """Waits until every write is settled and refuses new ones; answers the failure to raise
        (the oldest, noting the others), so the repository can close its connections first."""
        await self.wait_for(None)
        self._closed = True
        self._work.set()
        if self._task is not None and not self._task.done():
            await self._task
        return self._queue.take_failures()

    async def _send_pending(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closed:
                        return
                    self._work.clear()
                    await self._work.wait()
                    continue
                batch = self._queue.next_batch()
                outcomes, together = await deliver(batch, self._send)
                self._queue.settle(batch, outcomes, together)
                self._progress.set()
                self._progress = asyncio.Event()
        except asyncio.CancelledError:
            # Never silent: the loop is ending (asyncio.run returned) before aclose() was awaited.
            if self._queue:
                logger.error(
                    "write-behind: %d writes to %s were not delivered: the event loop ended before "
                    "aclose() was awaited",
                    len(self._queue),
                    self._url,
                )
            failure = self._queue.take_failures()
            if failure is not None:
                logger.error("write-behind writes to %s were not delivered", self._url, exc_info=failure)
            raise
