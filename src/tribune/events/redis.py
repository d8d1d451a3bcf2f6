"""The event bus across workers: Redis pub/sub, one channel per Space.

Each worker holds one pub/sub connection, subscribed to the channels of the Spaces it has
local subscribers for (SSE clients); a reader task hands each message to those
subscribers' bounded queues, exactly as the in-process bus does. Event ids come from one
``INCR`` per Space, so they are ordered the same for every worker. Pub/sub delivers to
whoever is listening at that moment and keeps nothing: a client that reconnects gets a
fresh snapshot first (see api/routes/events.py), as with the in-process bus.

``follow_others`` pattern-subscribes to every Space's channel on the same connection and
hands the events other processes published (each message names its publisher) to one
handler, in order: that is how a media node learns what API workers decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from tribune.events.base import Event, EventHandler
from tribune.events.memory import LocalSubscribers, _QueueSubscription, closed_subscription

logger = logging.getLogger(__name__)


class RedisEventBus:
    def __init__(self, redis: Redis, prefix: str = "tribune:events") -> None:
        self.redis = redis
        self.prefix = prefix
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers = LocalSubscribers()
        self._lock = asyncio.Lock()
        self._closed = False
        #: names this process in its messages, so followers can skip their own
        self.origin = secrets.token_hex(8)
        self._followers: list[asyncio.Queue[Event]] = []

    def _channel(self, space_id: str) -> str:
        return f"{self.prefix}:{{{space_id}}}"

    async def publish(self, space_id: str, type: str, data: dict[str, Any]) -> Event:
        event_id = await self.redis.incr(f"{self._channel(space_id)}:id")
        event = Event(int(event_id), space_id, type, data, time.time())
        message = orjson.dumps(
            {"id": event.id, "type": type, "data": data, "at": event.at, "origin": self.origin}
        )
        await self.redis.publish(self._channel(space_id), message)
        return event

    @asynccontextmanager
    async def subscribe(self, space_id: str) -> AsyncIterator[_QueueSubscription]:
        if self._closed:
            async with closed_subscription() as closed:
                yield closed
            return
        async with self._lock:
            sub, first = self._subscribers.add(space_id)
            if first:
                pubsub = await self._ensure_reader()
                await pubsub.subscribe(self._channel(space_id))
        try:
            yield sub
        finally:
            async with self._lock:
                last = self._subscribers.remove(space_id, sub)
                if last and self._pubsub is not None and not self._closed:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(self._channel(space_id))

    @asynccontextmanager
    async def follow_others(self, handler: EventHandler) -> AsyncIterator[None]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        pattern = f"{self.prefix}:{{*}}"

        async def run() -> None:
            while True:
                event = await queue.get()
                try:
                    await handler(event)
                except Exception:
                    logger.exception("events: a follower failed on %s", event.type)

        async with self._lock:
            pubsub = await self._ensure_reader()
            self._followers.append(queue)
            if len(self._followers) == 1:
                await pubsub.psubscribe(pattern)
        task = asyncio.create_task(run(), name="redis events follower")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with self._lock:
                self._followers.remove(queue)
                if not self._followers and self._pubsub is not None and not self._closed:
                    with contextlib.suppress(Exception):
                        await self._pubsub.punsubscribe(pattern)

    async def _ensure_reader(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(self._pubsub), name="redis events")
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        failing = False
        while not self._closed:
            if not pubsub.subscribed:  # covers pattern subscriptions too
                await asyncio.sleep(0.05)
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:  # once per outage
                    logger.exception("events: reading from Redis failed; retrying quietly")
                failing = True
                await asyncio.sleep(1.0)
                continue
            if failing:
                logger.info("events: reading from Redis again")
                failing = False
            if message is None or message.get("type") not in ("message", "pmessage"):
                continue
            try:
                self._deliver(message)
            except (ValueError, KeyError, TypeError):
                logger.exception("events: unreadable message on %r", message.get("channel"))

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        space_id = channel[len(self.prefix) + 2 : -1]  # prefix:{space}
        body = orjson.loads(message["data"])
        event = Event(int(body["id"]), space_id, body["type"], body["data"], float(body["at"]))
        if message["type"] == "pmessage":  # for followers; subscribers get the "message"
            if body.get("origin") != self.origin:
                for queue in self._followers:
                    queue.put_nowait(event)
            return
        self._subscribers.deliver(event)

    def subscriber_count(self, space_id: str) -> int:
        return self._subscribers.count(space_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._subscribers.close_all()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()
