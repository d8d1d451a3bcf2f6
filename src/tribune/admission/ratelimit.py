"""Rate limits as token buckets, behind a Protocol (in-process now, Redis later)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: seconds until one more request would be allowed (0 when allowed)
    retry_after: float


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: float, burst: float) -> Decision:
        """Spend one token from ``key``'s bucket (``rate`` per second, ``burst`` deep)."""

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Token buckets in a dict; full buckets are dropped now and then to bound memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    async def hit(self, key: str, rate: float, burst: float) -> Decision:
        now = self.clock()
        tokens, updated = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now, rate, burst)
            return Decision(True, 0.0)
        self._buckets[key] = (tokens, now)
        return Decision(False, (1.0 - tokens) / rate)

    def _prune(self, now: float, rate: float, burst: float) -> None:
        full = [k for k, (t, u) in self._buckets.items() if t + (now - u) * rate >= burst]
        for key in full:
            del self._buckets[key]

    async def close(self) -> None:
        self._buckets.clear()
