"""This process's subscribers, and the notices (``db.notifications``) that wake them.

A notice only wakes: it sets the subscriber's flag and keeps the notice's keys, never waiting for
anyone, so writers and other subscribers never wait for a slow one. When listening (re)starts
every subscriber is woken, to read what was committed while no one listened.
"""

import asyncio
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from db.notifications import Event
from graphql_api import metrics
from graphql_api.errors import ErrorCode, LimitError

Topic = tuple[str, ...]
"""What a subscriber watches: ``(tenant,)``, ``(tenant, session_id)`` or
``(tenant, session_id, agent_id)``."""
MOST_KEPT_EVENTS = 10_000
"""Notices a subscriber keeps while it reads; past that it reads everything from its cursor."""


@dataclass(eq=False)
class Subscriber:
    topic: Topic
    bucket: str
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MOST_KEPT_EVENTS))
    everything: bool = False
    """Woken by a reconnection or too many notices: what it missed is known only from its cursor.
    (The first read, before any notice, reads from the cursor anyway.)"""

    def wake(self, event: Event | None) -> None:
        if event is None or len(self.events) == MOST_KEPT_EVENTS:
            self.everything = True
        else:
            self.events.append(event)
        self.woken.set()

    async def wait(self, seconds: float) -> tuple[list[Event], bool]:
        """The notices since the last call, and whether anything else may have been missed; empty
        after ``seconds`` without one."""
        try:
            await asyncio.wait_for(self.woken.wait(), seconds)
        except TimeoutError:
            return [], False
        self.woken.clear()
        events, everything = list(self.events), self.everything
        self.events.clear()
        self.everything = False
        return events, everything


def topics_of(event: Event) -> Iterator[Topic]:
    yield (event.tenant,)
    yield (event.tenant, event.session_id)
    if event.agent_id is not None:
        yield (event.tenant, event.session_id, event.agent_id)


class Hub:
    def __init__(self, *, per_key: int = 1000) -> None:
        self.per_key = per_key
        self._subscribers: dict[Topic, set[Subscriber]] = {}
        self._by_bucket: Counter[str] = Counter()
        self._listened = False

    @property
    def count(self) -> int:
        return sum(self._by_bucket.values())

    def on_event(self, event: Event) -> None:
        for topic in topics_of(event):
            for subscriber in self._subscribers.get(topic, ()):
                subscriber.wake(event)

    def on_listening(self) -> None:
        if self._listened:
            metrics.listener_reconnects.inc()
        self._listened = True
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.wake(None)

    @contextmanager
    def subscribe(self, topic: Topic, bucket: str) -> Iterator[Subscriber]:
        """A subscriber to ``topic`` for as long as the block runs; ``bucket`` is the caller's key,
        whose subscriptions are counted (``TOO_MANY_SUBSCRIPTIONS`` past ``per_key``)."""
        if self._by_bucket[bucket] >= self.per_key:
            raise LimitError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"these credentials hold {self.per_key} subscriptions on this server, the most allowed",
            )
        subscriber = Subscriber(topic, bucket)
        self._subscribers.setdefault(topic, set()).add(subscriber)
        self._by_bucket[bucket] += 1
        metrics.subscriptions_active.inc()
        try:
            yield subscriber
        finally:
            self.leave(subscriber)

    def leave(self, subscriber: Subscriber) -> None:
        """Forgets ``subscriber`` (once): it is woken no more, and no longer counted."""
        watching = self._subscribers.get(subscriber.topic)
        if watching is None or subscriber not in watching:
            return
        watching.discard(subscriber)
        if not watching:
            del self._subscribers[subscriber.topic]
        metrics.subscriptions_active.dec()
        self._by_bucket[subscriber.bucket] -= 1
        if not self._by_bucket[subscriber.bucket]:
            del self._by_bucket[subscriber.bucket]
