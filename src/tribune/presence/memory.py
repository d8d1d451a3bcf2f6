"""Exact, in-process presence for the embedded default."""

from __future__ import annotations

import time
from collections.abc import Callable

from tribune.presence.base import ListenerCounts


class _SpacePresence:
    __slots__ = ("ever", "last_seen")

    def __init__(self) -> None:
        # Insertion order is kept oldest-first (a re-seen id is moved to the end), so
        # expiring the window only ever looks at the front of the dict.
        self.last_seen: dict[str, float] = {}
        self.ever: set[str] = set()


class MemoryPresence:
    """Distinct ids seen in the last ``window`` seconds, and distinct ids ever seen."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._spaces: dict[str, _SpacePresence] = {}

    def _space(self, space_id: str) -> _SpacePresence:
        space = self._spaces.get(space_id)
        if space is None:
            space = self._spaces[space_id] = _SpacePresence()
        return space

    async def seen(self, space_id: str, listener_id: str) -> None:
        space = self._space(space_id)
        space.last_seen.pop(listener_id, None)
        space.last_seen[listener_id] = self.clock()
        space.ever.add(listener_id)

    def _expire(self, space: _SpacePresence) -> None:
        cutoff = self.clock() - self.window
        last_seen = space.last_seen
        while last_seen:
            oldest = next(iter(last_seen))
            if last_seen[oldest] >= cutoff:
                break
            del last_seen[oldest]

    async def counts(self, space_id: str) -> ListenerCounts:
        space = self._spaces.get(space_id)
        if space is None:
            return ListenerCounts(0, 0)
        self._expire(space)
        return ListenerCounts(len(space.last_seen), len(space.ever))

    async def forget(self, space_id: str, listener_id: str) -> None:
        space = self._spaces.get(space_id)
        if space is not None:
            space.last_seen.pop(listener_id, None)

    async def close_space(self, space_id: str) -> ListenerCounts:
        final = await self.counts(space_id)
        self._spaces.pop(space_id, None)
        return ListenerCounts(0, final.total)

    async def close(self) -> None:
        self._spaces.clear()
