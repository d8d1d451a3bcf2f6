"""The event bus interface (in-process now; Redis pub/sub across workers later)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    id: int
    space_id: str
    type: str
    data: dict[str, Any]
    at: float


class SubscriptionClosed(Exception):
    """The bus closed, or this subscriber fell too far behind and was cut off."""


class Subscription(Protocol):
    async def get(self, within: float) -> Event | None:
        """The next event, or ``None`` if none came within ``within`` seconds."""


EventHandler = Callable[[Event], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, space_id: str, type: str, data: dict[str, Any]) -> Event: ...

    def subscribe(self, space_id: str) -> AbstractAsyncContextManager[Subscription]:
        """``async with bus.subscribe(sid) as sub: event = await sub.get(15)``"""

    def follow_others(self, handler: EventHandler) -> AbstractAsyncContextManager[None]:
        """While open, ``handler`` gets every Space's events published by *other* processes
        (in order per process). The media node follows what API workers decide this way;
        in a single process there are no others, and nothing comes."""

    async def close(self) -> None: ...
