"""The same presence tests for both backends: exact sets in process, HyperLogLogs in a
real Redis. Counts from Redis are estimates (0.81 % standard error): small counts are
checked to within one, the 1.3-million-listener night to within 1 %."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.redis_server import running_redis
from tribune.presence.base import Presence
from tribune.presence.memory import MemoryPresence
from tribune.presence.redis import RedisPresence


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0  # wall-clock-like: Redis buckets come from it

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(kind: str, redis_url: str, clock: Clock) -> Presence:
    if kind == "memory":
        return MemoryPresence(window=30, clock=clock)
    return RedisPresence(
        Redis.from_url(redis_url), window=30, clock=clock, prefix=f"t{secrets.token_hex(4)}"
    )


@pytest.fixture(params=["memory", "redis"])
async def presence(
    request: pytest.FixtureRequest, redis_url: str, clock: Clock
) -> AsyncIterator[Presence]:
    p = make(request.param, redis_url, clock)
    yield p
    await p.close()


def near(got: int, want: int) -> bool:
    return abs(got - want) <= max(1, round(0.01 * want))


async def test_distinct_ids_in_the_window_count_once(presence: Presence, clock: Clock) -> None:
    for i in range(100):
        await presence.seen("s", f"l{i}")
    await presence.seen("s", "l0")
    counts = await presence.counts("s")
    assert near(counts.concurrent, 100)
    assert near(counts.total, 100)
    clock.t += 20
    for i in range(50):
        await presence.seen("s", f"l{i}")
    clock.t += 16  # l50..l99 were last seen 36 s ago
    counts = await presence.counts("s")
    assert near(counts.concurrent, 50)
    assert near(counts.total, 100)


async def test_a_listener_who_stops_heartbeating_leaves_within_35_s(
    presence: Presence, clock: Clock
) -> None:
    await presence.seen("s", "a")
    clock.t += 29.0
    assert (await presence.counts("s")).concurrent == 1  # still inside the window
    clock.t += 6.1
    counts = await presence.counts("s")
    assert counts.concurrent == 0
    assert counts.total == 1


async def test_spaces_are_separate_and_closing_one_gives_its_final_counts(
    presence: Presence,
) -> None:
    await presence.seen("a", "x")
    await presence.seen("b", "x")
    await presence.seen("b", "y")
    assert (await presence.counts("a")).public() == {"concurrent": 1, "total": 1}
    assert (await presence.counts("b")).public() == {"concurrent": 2, "total": 2}
    final = await presence.close_space("b")
    assert final.total == 2
    assert (await presence.counts("b")).public() == {"concurrent": 0, "total": 0}
    assert (await presence.counts("a")).total == 1


async def test_the_night_of_1_3_million_listeners_is_counted_within_1_percent(
    presence: Presence, clock: Clock
) -> None:
    """1.3 million distinct ids through ``seen`` (the path heartbeats take), spread over
    20 s, then every one of them again: both counts within 1 % of the truth."""
    n = 1_300_000
    for i in range(n):
        if i % 65_000 == 0:
            clock.t += 1.0
        await presence.seen("night", f"listener-{i}")
    for i in range(0, n, 2):  # half of them heartbeat again
        await presence.seen("night", f"listener-{i}")
    counts = await presence.counts("night")
    assert abs(counts.concurrent - n) <= 0.01 * n, counts
    assert abs(counts.total - n) <= 0.01 * n, counts
    print(f"\n{type(presence).__name__}: {counts.concurrent} concurrent, {counts.total} total")


async def test_workers_sharing_redis_count_the_union(redis_url: str, clock: Clock) -> None:
    """Two workers (two RedisPresence on one Redis) see overlapping listeners: either one
    counts them all once."""
    prefix = f"t{secrets.token_hex(4)}"
    a = RedisPresence(Redis.from_url(redis_url), window=30, clock=clock, prefix=prefix)
    b = RedisPresence(Redis.from_url(redis_url), window=30, clock=clock, prefix=prefix)
    try:
        for i in range(1000):
            await a.seen("s", f"l{i}")
        for i in range(500, 1500):
            await b.seen("s", f"l{i}")
        await b.flush()
        counts = await a.counts("s")
        assert near(counts.concurrent, 1500), counts
        assert near((await b.counts("s")).total, 1500)
    finally:
        await a.close()
        await b.close()


async def test_ids_reach_redis_without_anyone_asking(redis_url: str, clock: Clock) -> None:
    """Seen ids are flushed in the background within flush_s, one PFADD per bucket."""
    prefix = f"t{secrets.token_hex(4)}"
    writer = RedisPresence(
        Redis.from_url(redis_url), window=30, clock=clock, prefix=prefix, flush_s=0.05
    )
    reader = RedisPresence(Redis.from_url(redis_url), window=30, clock=clock, prefix=prefix)
    try:
        await writer.seen("s", "one")
        await writer.seen("s", "two")
        for _ in range(100):
            if (await reader.counts("s")).concurrent == 2:
                break
            await asyncio.sleep(0.02)
        assert (await reader.counts("s")).concurrent == 2
    finally:
        await writer.close()
        await reader.close()
