"""A subscription's rows: read from the subscriber's cursor each time it is woken, through a
bounded buffer.

No gap and no duplicate, whatever the order of events: the subscriber is registered with the hub
*before* its first read, so a commit after that read wakes it, and every read starts at the
cursor, past what was sent. A notice that arrives while a read runs only makes the next read
start where this one ended.

A pump task reads into the subscriber's buffer; the GraphQL stream takes from it. A subscriber
whose buffer stays full for ``slow_seconds`` (its client does not read what is sent) is closed as
too slow: only its own pump ever waited for it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from db.engine import Database
from db.notifications import Event
from graphql_api import metrics
from graphql_api.errors import ErrorCode, LimitError
from graphql_api.live.hub import Hub, Subscriber, Topic

logger = logging.getLogger(__name__)

IDLE_SECONDS = 30.0
"""Without any notice for this long, a subscriber reads from its cursor anyway (a safety net)."""
RETRY_SECONDS = 1.0
T = TypeVar("T")
K = TypeVar("K")


class TooSlow(Exception):
    """The subscriber's buffer stayed full."""


@dataclass
class Live:
    """What a subscription needs of the process: the hub, the primary, and the limits."""

    hub: Hub
    database: Database
    buffer_events: int = 1000
    slow_seconds: float = 5.0
    _reads: dict[object, "asyncio.Future[object]"] | None = None

    async def shared_read(self, key: object, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, done once for every subscriber asking for the same ``key`` at the same time
        (a session's viewers, woken by one notice, read the same rows from the same cursor)."""
        if self._reads is None:
            self._reads = {}
        pending = self._reads.get(key)
        if pending is not None:
            shared: T = await asyncio.shield(pending)  # type: ignore[arg-type]
            return shared
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._reads[key] = future
        try:
            result = await read()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._reads[key]


class Reader(Generic[T]):
    """What a stream reads when woken: ``read(events, everything)`` returns the next rows (its
    own cursor moved past them) and whether more may follow at once."""

    async def start(self) -> None:
        """Runs once, after the subscriber is registered and before the first read."""

    async def read(self, events: list[Event], everything: bool) -> tuple[list[T], bool]:
        raise NotImplementedError


async def _pump(
    subscriber: Subscriber, reader: Reader[T], queue: "asyncio.Queue[Any]", slow_seconds: float
) -> None:
    await reader.start()
    events: list[Event] = []
    everything = True
    while True:
        if events or everything:
            try:
                rows, more = await reader.read(events, everything)
            except Exception as error:  # an outage: the subscriber resumes from its cursor
                logger.warning("a subscription's read failed, retrying: %r", error)
                await asyncio.sleep(RETRY_SECONDS)
                events, everything = [], True
                continue
            for row in rows:
                try:
                    await asyncio.wait_for(queue.put(row), slow_seconds)
                except TimeoutError:
                    raise TooSlow from None
            if more:
                events, everything = [], True
                continue
        events, everything = await subscriber.wait(IDLE_SECONDS)
        if not events and not everything:
            everything = True  # the idle safety net


async def stream(
    live: Live,
    topic: Topic,
    bucket: str,
    reader: Reader[T],
    on_too_slow: Callable[[str], None],
) -> AsyncIterator[T]:
    """The rows ``reader`` reads for a subscriber to ``topic``, until the subscriber goes."""
    with live.hub.subscribe(topic, bucket) as subscriber:
        # Holds rows, and once the pump has ended, the pump itself: what ends the stream.
        queue: asyncio.Queue[T | asyncio.Task[None]] = asyncio.Queue(maxsize=live.buffer_events)
        pump = asyncio.create_task(_pump(subscriber, reader, queue, live.slow_seconds), name="subscription")
        pump.add_done_callback(lambda task: _pump_ended(task, live, subscriber, queue, on_too_slow))
        try:
            while True:
                item = await queue.get()
                if item is pump:
                    _raise_for(pump, live)
                yield item  # type: ignore[misc]  # a row: the pump is the only task queued
        finally:
            pump.cancel()


def _too_slow_message(live: Live) -> str:
    return (
        f"subscriber too slow: {live.buffer_events} events waited over {live.slow_seconds:g} s; "
        "subscribe again from the last id received"
    )


def _pump_ended(
    task: "asyncio.Task[None]",
    live: Live,
    subscriber: Subscriber,
    queue: "asyncio.Queue[Any]",
    on_too_slow: Callable[[str], None],
) -> None:
    if task.cancelled():
        return
    # What is still buffered is dropped: the stream ends at once, on the pump's error.
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(task)
    if isinstance(task.exception(), TooSlow):
        # Its stream may stay stuck sending to a client that does not read: it counts no more.
        live.hub.leave(subscriber)
        metrics.subscriptions_closed_slow.inc()
        on_too_slow(_too_slow_message(live))


def _raise_for(pump: "asyncio.Task[None]", live: Live) -> None:
    error = pump.exception() if not pump.cancelled() else None
    if isinstance(error, TooSlow):
        raise LimitError(ErrorCode.SUBSCRIBER_TOO_SLOW, _too_slow_message(live))
    if error is not None:
        raise error
    raise asyncio.CancelledError
