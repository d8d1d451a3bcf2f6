"""In-process event bus: a bounded queue per subscriber."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tribune.events.base import Event, EventHandler, SubscriptionClosed

logger = logging.getLogger(__name__)

#: A subscriber further behind than this is cut off (it reconnects and gets a snapshot)
#: rather than letting one slow client hold memory for everyone.
QUEUE_DEPTH = 256

_CLOSED = object()


class _QueueSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_DEPTH)

    async def get(self, within: float) -> Event | None:
        try:
            item = await asyncio.wait_for(self.queue.get(), within)
        except TimeoutError:
            return None
        if item is _CLOSED:
            self.queue.put_nowait(_CLOSED)  # stay closed for any later get()
            raise SubscriptionClosed
        assert isinstance(item, Event)
        return item

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_CLOSED)


class LocalSubscribers:
    """This process's subscribers, per Space: what every bus hands events to."""

    def __init__(self) -> None:
        self._by_space: dict[str, set[_QueueSubscription]] = defaultdict(set)

    def add(self, space_id: str) -> tuple[_QueueSubscription, bool]:
        """A new subscription, and whether it is the Space's first here."""
        first = not self._by_space.get(space_id)
        sub = _QueueSubscription()
        self._by_space[space_id].add(sub)
        return sub, first

    def remove(self, space_id: str, sub: _QueueSubscription) -> bool:
        """Drop ``sub``; True when the Space has no subscribers here any more."""
        subs = self._by_space.get(space_id)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._by_space[space_id]
        return True

    def deliver(self, event: Event) -> None:
        for sub in list(self._by_space.get(event.space_id, ())):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("cutting off a slow subscriber of space %s", event.space_id)
                self._by_space[event.space_id].discard(sub)
                sub.close()

    def count(self, space_id: str) -> int:
        return len(self._by_space.get(space_id, ()))

    def close_all(self) -> None:
        for subs in self._by_space.values():
            for sub in subs:
                sub.close()
        self._by_space.clear()


@asynccontextmanager
async def closed_subscription() -> AsyncIterator[_QueueSubscription]:
    """What subscribing to a closed bus gives: a subscription that is already closed."""
    sub = _QueueSubscription()
    sub.close()
    yield sub


class MemoryEventBus:
    def __init__(self) -> None:
        self._subscribers = LocalSubscribers()
        self._ids = itertools.count(1)
        self._closed = False

    async def publish(self, space_id: str, type: str, data: dict[str, Any]) -> Event:
        event = Event(next(self._ids), space_id, type, data, time.time())
        self._subscribers.deliver(event)
        return event

    @asynccontextmanager
    async def subscribe(self, space_id: str) -> AsyncIterator[_QueueSubscription]:
        if self._closed:
            async with closed_subscription() as closed:
                yield closed
            return
        sub, _ = self._subscribers.add(space_id)
        try:
            yield sub
        finally:
            self._subscribers.remove(space_id, sub)

    @asynccontextmanager
    async def follow_others(self, handler: EventHandler) -> AsyncIterator[None]:
        yield  # one process: no other publishers

    def subscriber_count(self, space_id: str) -> int:
        return self._subscribers.count(space_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._subscribers.close_all()
