"""The media node of a scaled deployment, and what API workers need from it.

In the embedded default one process decides (the domain) and enforces (the stage) in the
same call. Scaled, API workers decide and one media process holds each Space's stage and
broadcast. The decisions reach it over the event bus: the node follows every event other
processes publish (``EventBus.follow_others``), reloads the Space and applies the event,
exactly as ``Spaces._publish`` does locally. Speaking levels go the other way, through a
Redis key per Space that the node refreshes several times a second and any worker reads
when it builds the room-state document. WHIP requests are forwarded to the node by
``api/routes/whip.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import orjson

from tribune.events.base import Event
from tribune.exceptions import NotFound
from tribune.rooms.space import RoomEvent
from tribune.service.runtime import Runtime
from tribune.service.spaces import Spaces

logger = logging.getLogger(__name__)

#: the events that change what the media does (see MediaHub.apply)
MEDIA_EVENTS = frozenset({"space.state", "stage.muted", "stage.left", "member.removed"})
LEVELS_EVERY_S = 0.25
RECONCILE_EVERY_S = 1.0
LEVELS_TTL_MS = 2000


def levels_key(space_id: str) -> str:
    return f"tribune:levels:{{{space_id}}}"


async def read_levels(rt: Runtime, space_id: str) -> dict[str, float]:
    """Speaking levels of a Space whose media runs on another process (empty if none)."""
    if rt.redis is None:
        return {}
    try:
        raw = await rt.redis.get(levels_key(space_id))
    except Exception:
        logger.exception("levels: reading from Redis failed")
        return {}
    if not raw:
        return {}
    levels = orjson.loads(raw)
    return {str(k): float(v) for k, v in levels.items()}


class MediaNode:
    def __init__(self, rt: Runtime, spaces: Spaces) -> None:
        self.rt = rt
        self.spaces = spaces
        self.applied = 0

    async def handle(self, event: Event) -> None:
        if event.type not in MEDIA_EVENTS:
            return
        try:
            room = await self.spaces.get(event.space_id)
        except NotFound:
            return
        await self.rt.media.apply(room, [RoomEvent(event.type, event.data)])
        self.applied += 1

    async def publish_levels(self) -> None:
        redis = self.rt.redis
        if redis is None:
            return
        failing_since: float | None = None
        while True:
            await asyncio.sleep(LEVELS_EVERY_S)
            try:
                pipe = redis.pipeline(transaction=False)
                for space_id in self.rt.media.live_spaces():
                    levels = self.rt.media.levels(space_id)
                    pipe.set(levels_key(space_id), orjson.dumps(levels), px=LEVELS_TTL_MS)
                await pipe.execute()
                if failing_since is not None:
                    down = time.monotonic() - failing_since
                    logger.info("levels: Redis is back after %.0f s", down)
                    failing_since = None
            except Exception:
                if failing_since is None:  # once per outage, not four times a second
                    failing_since = time.monotonic()
                    logger.exception("levels: publishing to Redis failed; retrying quietly")

    async def reconcile(self) -> None:
        """Every second, bring each running Space's media in line with the database: pub/sub
        keeps nothing, so an event published while this node was reconnecting to Redis is
        gone, and only a look at the stored room repairs what it would have changed."""
        if self.rt.redis is None:
            return  # one process: every decision is applied where it is made
        while True:
            await asyncio.sleep(RECONCILE_EVERY_S)
            for space_id in self.rt.media.live_spaces():
                try:
                    await self.rt.media.reconcile(await self.spaces.get(space_id))
                except NotFound:
                    await self.rt.media.close_space(space_id)
                except Exception:
                    logger.exception("media: reconciling Space %s failed", space_id)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow other workers' decisions, reconcile with the database and publish levels
        while the block runs."""
        tasks = [
            asyncio.create_task(self.publish_levels(), name="media levels"),
            asyncio.create_task(self.reconcile(), name="media reconcile"),
        ]
        try:
            async with self.rt.bus.follow_others(self.handle):
                yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
