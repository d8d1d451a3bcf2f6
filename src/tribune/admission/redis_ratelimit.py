"""Token buckets shared by every worker: one Redis hash per key, updated atomically by a
Lua script that reads Redis's own clock (so workers' clocks need not agree)."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from tribune.admission.ratelimit import Decision

# KEYS[1] = bucket; ARGV = rate per second, burst. Returns {allowed, retry_after_ms}.
_HIT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil then
  tokens = burst
  updated = now
end
tokens = math.min(burst, tokens + (now - updated) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ms', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "tribune:rate") -> None:
        self.redis = redis
        self.prefix = prefix
        self._hit = redis.register_script(_HIT)

    async def hit(self, key: str, rate: float, burst: float) -> Decision:
        if rate <= 0 or burst < 1 or not math.isfinite(rate + burst):
            raise ValueError(f"need rate > 0 and burst >= 1, got {rate}, {burst}")
        allowed, wait_ms = await self._hit(keys=[f"{self.prefix}:{key}"], args=[rate, burst])
        return Decision(bool(allowed), int(wait_ms) / 1000)

    async def close(self) -> None:
        await self.redis.aclose()
