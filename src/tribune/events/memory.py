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


class MemoryEventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[_QueueSubscription]] = defaultdict(set)
        self._ids = itertools.count(1)
        self._closed = False

    async def publish(self, space_id: str, type: str, data: dict[str, Any]) -> Event:
        event = Event(next(self._ids), space_id, type, data, time.time())
        for sub in list(self._subscribers.get(space_id, ())):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("cutting off a slow subscriber of space %s", space_id)
                self._subscribers[space_id].discard(sub)
                sub.close()
        return event

    @asynccontextmanager
    async def subscribe(self, space_id: str) -> AsyncIterator[_QueueSubscription]:
        sub = _QueueSubscription()
        if self._closed:
            sub.close()
        else:
            self._subscribers[space_id].add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(space_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[space_id]

    @asynccontextmanager
    async def follow_others(self, handler: EventHandler) -> AsyncIterator[None]:
        yield  # one process: no other publishers

    def subscriber_count(self, space_id: str) -> int:
        return len(self._subscribers.get(space_id, ()))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()
        self._subscribers.clear()
