"""Rate limits and the event bus: the same tests for the in-process backends and the
Redis ones (a real redis-server), as the scaled configuration runs them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tribune.admission.ratelimit import MemoryRateLimiter, RateLimiter
from tribune.admission.redis_ratelimit import RedisRateLimiter
from tribune.events.base import EventBus, SubscriptionClosed
from tribune.events.memory import MemoryEventBus
from tribune.events.redis import RedisEventBus


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateLimiter]:
    made: RateLimiter = (
        MemoryRateLimiter()
        if request.param == "memory"
        else RedisRateLimiter(Redis.from_url(redis_url), prefix=f"t{secrets.token_hex(4)}")
    )
    yield made
    await made.close()


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[EventBus]:
    made: EventBus = (
        MemoryEventBus()
        if request.param == "memory"
        else RedisEventBus(Redis.from_url(redis_url), prefix=f"t{secrets.token_hex(4)}")
    )
    yield made
    await made.close()


async def test_token_bucket_allows_the_burst_then_refuses_then_refills(
    limiter: RateLimiter,
) -> None:
    decisions = [await limiter.hit("k", rate=10, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 0 < decisions[-1].retry_after <= 0.11
    assert (await limiter.hit("other", rate=10, burst=3)).allowed  # keys are separate
    await asyncio.sleep(0.12)
    assert (await limiter.hit("k", rate=10, burst=3)).allowed
    assert not (await limiter.hit("k", rate=10, burst=3)).allowed


async def test_two_redis_limiters_share_one_bucket(redis_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    a = RedisRateLimiter(Redis.from_url(redis_url), prefix=prefix)
    b = RedisRateLimiter(Redis.from_url(redis_url), prefix=prefix)
    try:
        allowed = [
            (await (a if n % 2 else b).hit("person", rate=1, burst=4)).allowed for n in range(8)
        ]
        assert allowed == [True] * 4 + [False] * 4
    finally:
        await a.close()
        await b.close()


async def test_subscribers_get_events_in_order_and_only_their_spaces(bus: EventBus) -> None:
    async with bus.subscribe("s1") as one, bus.subscribe("s2") as two:
        first = await bus.publish("s1", "stage.joined", {"user_id": "u1"})
        second = await bus.publish("s1", "stage.muted", {"user_id": "u1"})
        await bus.publish("s2", "reaction", {"reaction": "clap"})
        got = [await one.get(2), await one.get(2)]
        assert [e.type for e in got if e] == ["stage.joined", "stage.muted"]
        assert [e.id for e in got if e] == [first.id, second.id]
        assert first.id < second.id
        assert got[0] is not None
        assert got[0].data == {"user_id": "u1"}
        other = await two.get(2)
        assert other is not None
        assert other.type == "reaction"
        assert await one.get(0.1) is None  # nothing else for s1


async def test_closing_the_bus_ends_its_subscriptions(bus: EventBus) -> None:
    async with bus.subscribe("s") as sub:
        await bus.close()
        with pytest.raises(SubscriptionClosed):
            await sub.get(1)


async def test_an_event_published_by_one_worker_reaches_anothers_subscriber(
    redis_url: str,
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    a = RedisEventBus(Redis.from_url(redis_url), prefix=prefix)
    b = RedisEventBus(Redis.from_url(redis_url), prefix=prefix)
    try:
        async with b.subscribe("s") as sub:
            channel = f"{prefix}:{{s}}"
            probe = Redis.from_url(redis_url)
            try:  # wait until Redis has the subscription, or the event would go nowhere
                deadline = time.monotonic() + 5
                while dict(await probe.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:
                    assert time.monotonic() < deadline, "the subscription never reached Redis"
                    await asyncio.sleep(0.01)
            finally:
                await probe.aclose()
            sent = await a.publish("s", "space.state", {"old": "live", "new": "ended"})
            got = await sub.get(2)
            assert got is not None
            assert (got.id, got.type, got.data) == (sent.id, "space.state", sent.data)
        assert b.subscriber_count("s") == 0
    finally:
        await a.close()
        await b.close()
