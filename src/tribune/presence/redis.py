"""Presence shared by every worker through Redis: HyperLogLogs, not sets.

Exact sets of listener ids do not scale to the night with 1.3 million listeners (tens of
megabytes a Space, and a set operation per heartbeat per worker). Here each Space keeps

* one HyperLogLog per ``bucket_s`` time bucket of the ids seen in it, expiring after the
  window: the concurrent count is ``PFCOUNT`` over the buckets that cover the window
  (Redis merges them on the fly), so a listener who stops heartbeating leaves the count
  between ``window`` and ``window + bucket_s`` seconds later;
* one HyperLogLog of every id ever seen: the total.

A HyperLogLog is 12 KiB whatever the count and its standard error is 0.81 %. Heartbeats
are not sent to Redis one by one: each worker collects the ids it saw and adds them in
one ``PFADD`` per Space and bucket every ``flush_s`` (and before it counts), so Redis sees
a command per Space per second per worker, not per listener. Bucket boundaries come from
the wall clock, which all workers share.

``forget`` cannot take an id out of a HyperLogLog: a removed listener stops counting when
their last bucket leaves the window (at most ``window + bucket_s``), as a silent one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tribune.presence.base import ListenerCounts

logger = logging.getLogger(__name__)


class RedisPresence:
    def __init__(
        self,
        redis: Redis,
        window: float = 30.0,
        *,
        bucket_s: float = 5.0,
        flush_s: float = 1.0,
        prefix: str = "tribune:presence",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window <= 0 or bucket_s <= 0 or flush_s <= 0:
            raise ValueError("window, bucket_s and flush_s must be positive")
        self.redis = redis
        self.window = window
        self.bucket_s = bucket_s
        self.flush_s = flush_s
        self.prefix = prefix
        self.clock = clock
        #: buckets that cover the window: the current one and enough before it
        self._span = math.ceil(window / bucket_s)
        self._ttl = math.ceil(window + 2 * bucket_s)
        # (space, bucket) -> ids seen here and not yet in Redis
        self._pending: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last: dict[str, ListenerCounts] = {}
        self._unreachable = False

    def _bucket_key(self, space_id: str, bucket: int) -> str:
        return f"{self.prefix}:{{{space_id}}}:b:{bucket}"

    def _total_key(self, space_id: str) -> str:
        return f"{self.prefix}:{{{space_id}}}:ever"

    def _bucket(self) -> int:
        return math.floor(self.clock() / self.bucket_s)

    async def seen(self, space_id: str, listener_id: str) -> None:
        self._pending[(space_id, self._bucket())].add(listener_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_s)
        try:
            await self.flush()
        except Exception:  # Redis down: the ids are lost, counts run low, nothing else
            logger.exception("presence: flushing to Redis failed")

    async def flush(self, space_id: str | None = None) -> None:
        """Send the ids collected so far (of one Space, or all) to Redis."""
        async with self._lock:
            taken = [k for k in self._pending if space_id is None or k[0] == space_id]
            if not taken:
                return
            batch = {k: self._pending.pop(k) for k in taken}
            pipe = self.redis.pipeline(transaction=False)
            for (space, bucket), ids in batch.items():
                key = self._bucket_key(space, bucket)
                pipe.pfadd(key, *ids)
                pipe.expire(key, self._ttl)
                pipe.pfadd(self._total_key(space), *ids)
            try:
                await pipe.execute()
            except Exception:
                for pending, ids in batch.items():  # keep them for the next flush
                    self._pending[pending] |= ids
                raise

    async def counts(self, space_id: str) -> ListenerCounts:
        """The counts from Redis; while Redis cannot be reached, the last ones this worker
        read (listener counts are worth showing slightly stale, not worth an error)."""
        try:
            await self.flush(space_id)
            now = self._bucket()
            keys = [self._bucket_key(space_id, b) for b in range(now - self._span, now + 1)]
            pipe = self.redis.pipeline(transaction=False)
            pipe.pfcount(*keys)
            pipe.pfcount(self._total_key(space_id))
            concurrent, total = await pipe.execute()
        except (RedisError, OSError):
            if not self._unreachable:
                logger.exception("presence: Redis unreachable; serving the last counts")
            self._unreachable = True
            return self._last.get(space_id, ListenerCounts(0, 0))
        if self._unreachable:
            logger.info("presence: Redis reachable again")
            self._unreachable = False
        counts = self._last[space_id] = ListenerCounts(int(concurrent), int(total))
        return counts

    async def forget(self, space_id: str, listener_id: str) -> None:
        for (space, _), ids in self._pending.items():
            if space == space_id:
                ids.discard(listener_id)

    async def close_space(self, space_id: str) -> ListenerCounts:
        final = await self.counts(space_id)
        self._last.pop(space_id, None)
        now = self._bucket()
        keys = [self._bucket_key(space_id, b) for b in range(now - self._span - 1, now + 1)]
        await self.redis.delete(*keys, self._total_key(space_id))
        return final

    async def close(self) -> None:
        """Flush what is pending and close the connection pool."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            await self.flush()
        except Exception:
            logger.exception("presence: last flush to Redis failed")
        await self.redis.aclose()
