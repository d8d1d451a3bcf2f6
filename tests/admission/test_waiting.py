"""Admission control and the waiting room, the same tests on both backends: in process
and in a real Redis (one Lua script shared by every worker)."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.redis_server import running_redis
from tribune.admission.redis_waiting import RedisWaitingRoom
from tribune.admission.tickets import InvalidTicket, QueueTicket, TicketExpired, Tickets
from tribune.admission.waiting import (
    CLIENT_JITTER,
    MAX_RETRY_S,
    Admission,
    Limits,
    MemoryWaitingRoom,
    TicketUsed,
    WaitingRoom,
    expected_wait,
)
from tribune.exceptions import Queued
from tribune.presence.base import ListenerCounts

SECRET = b"s" * 64


@dataclass
class FakePresence:
    """Just the concurrent count the admission reads."""

    concurrent: int = 0

    async def counts(self, space_id: str) -> ListenerCounts:
        return ListenerCounts(self.concurrent, self.concurrent)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
async def room(request: pytest.FixtureRequest) -> AsyncIterator[WaitingRoom]:
    if request.param == "memory":
        made: WaitingRoom = MemoryWaitingRoom(1800)
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisWaitingRoom(Redis.from_url(url), 1800, prefix=f"t{secrets.token_hex(4)}")
    yield made
    await made.close()


def admission(
    room: WaitingRoom, rate: float, max_listeners: int = 0, presence: FakePresence | None = None
) -> Admission:
    return Admission(
        room,
        Tickets(SECRET, 1800),
        presence or FakePresence(),  # type: ignore[arg-type]
        Limits(rate, max_listeners),
        count_max_age_s=0.0,
    )


async def join(adm: Admission, ticket: str | None = None, *, live: bool = True) -> Queued | None:
    """None when admitted, else the Queued answer."""
    try:
        await adm.admit("sp", ticket, live=live)
    except Queued as queued:
        return queued
    return None


async def test_under_the_limits_joins_go_straight_in_then_wait_in_line(room: WaitingRoom):
    """An idle Space admits a second's worth at once; the next join gets a ticket with its
    place, an estimate and a Retry-After no shorter than the line moves."""
    adm = admission(room, rate=5)
    assert [await join(adm) for _ in range(5)] == [None] * 5
    first, second = await join(adm), await join(adm)
    assert first is not None
    assert second is not None
    assert (first.position, second.position) == (1, 2)
    # their turns come in 0.2 and 0.4 s; they are told to come back in a second, and a
    # client that keeps the rules is back in 1 to 1.25 s: the estimate says 1.1
    assert first.estimated_wait_s == second.estimated_wait_s == 1.1
    assert first.retry_after == second.retry_after == 1
    assert not first.prestart
    assert first.ticket.startswith("tbq_")
    assert first.ticket != second.ticket
    await asyncio.sleep(0.45)
    assert await join(adm, second.ticket) is None
    assert await join(adm, first.ticket) is None


async def test_a_ticket_is_used_once_and_cannot_be_forged(room: WaitingRoom):
    adm = admission(room, rate=20)
    for _ in range(20):
        await join(adm)
    queued = await join(adm)
    assert queued is not None
    await asyncio.sleep(0.1)
    assert await join(adm, queued.ticket) is None
    with pytest.raises(TicketUsed, match="already used"):
        await join(adm, queued.ticket)
    body, sig = queued.ticket.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for forged in (f"{flipped}.{sig}", "tbq_x.y", "nonsense", queued.ticket + "A"):
        with pytest.raises(InvalidTicket):
            await join(adm, forged)
    other = Tickets(SECRET, 1800).sign(QueueTicket("other", "t1", False, 1, int(time.time())))
    with pytest.raises(InvalidTicket, match="another Space"):
        await join(adm, other)
    old = Tickets(SECRET, 1800).sign(QueueTicket("sp", "t2", False, 1, int(time.time()) - 1801))
    with pytest.raises(TicketExpired, match="join again"):
        await join(adm, old)


async def test_the_active_listener_limit_holds_the_line(room: WaitingRoom):
    """At max_listeners nobody new gets in, ticket or not; when a listener leaves the line
    moves again, first in first."""
    presence = FakePresence(concurrent=3)
    adm = admission(room, rate=1, max_listeners=3, presence=presence)
    a = await join(adm)
    b = await join(adm)
    assert a is not None
    assert b is not None
    assert b.position >= a.position
    await asyncio.sleep(1.1)
    assert await join(adm, a.ticket) is not None
    assert await join(adm, b.ticket) is not None
    presence.concurrent = 2
    assert await join(adm, a.ticket) is None
    presence.concurrent = 3  # a is listening now
    assert await join(adm, b.ticket) is not None


async def test_new_arrivals_never_overtake_anyone_waiting(room: WaitingRoom):
    adm = admission(room, rate=2)
    await join(adm)
    await join(adm)
    waiting = [await join(adm) for _ in range(3)]
    assert [q.position for q in waiting if q] == [1, 2, 3]
    late = await join(adm, None)
    assert late is not None
    assert late.position == 4
    # the first in line is let in first: the later ones still wait
    await asyncio.sleep(0.55)
    assert await join(adm, waiting[0].ticket) is None  # type: ignore[union-attr]
    assert await join(adm, waiting[2].ticket) is not None  # type: ignore[union-attr]
    assert await join(adm, late.ticket) is not None


def kendall_tau(xs: list[int], ys: list[int]) -> float:
    pairs = list(itertools.combinations(range(len(xs)), 2))
    score = sum(
        1 if (xs[i] - xs[j]) * (ys[i] - ys[j]) > 0 else -1
        for i, j in pairs
        if xs[i] != xs[j] and ys[i] != ys[j]
    )
    return score / len(pairs)


async def test_the_pre_queue_is_shuffled_at_the_start_then_first_come_first_served(
    room: WaitingRoom,
):
    """300 joins before the start: their places are drawn at random (Kendall tau between
    arrival and place near 0: its standard deviation is 0.04 here, the bound 5 of them),
    and all of them come before anyone who arrives after the start."""
    adm = admission(room, rate=0.5)  # the line barely moves while we look at it
    tickets = []
    for _ in range(300):
        queued = await join(adm, live=False)
        assert queued is not None
        assert queued.prestart
        assert queued.retry_after >= 1
        tickets.append(queued.ticket)
    late = [await join(adm) for _ in range(20)]  # the first join after the start
    places = []
    for ticket in tickets:
        queued = await join(adm, ticket)
        # the burst (one) is let in at once; the others are that far behind it
        places.append(queued.position if queued is not None else 0)
        assert queued is None or not queued.prestart
    assert sorted(places) == list(range(300))
    tau = kendall_tau(list(range(300)), places)
    assert abs(tau) < 0.2, tau
    after = [q.position for q in late if q is not None]
    assert len(after) == 20
    assert min(after) >= 300
    assert after == sorted(after)


async def test_pre_start_tickets_come_back_at_their_turn_not_all_at_the_start(
    room: WaitingRoom,
):
    """20 s before the start, 10 admitted a second: a ticket whose key ranks k-th so far is
    told to come back about k / 10 s after the start (never before it, at most 30 s on),
    so the pre-queue's returns spread over its drain instead of arriving at once."""
    adm = admission(room, rate=10)
    answers = []
    for _ in range(200):
        try:
            await adm.admit("sp", None, live=False, starts_in_s=20.0)
        except Queued as queued:
            answers.append(queued)
    assert len(answers) == 200
    for queued in answers[-50:]:  # ranks among all 200 keys drawn so far
        turn = 20.0 + queued.position / 10
        assert queued.retry_after == min(30, math.ceil(turn))
        assert queued.retry_after >= 20
        assert queued.estimated_wait_s == pytest.approx(expected_wait(turn), abs=0.06)
    assert len({q.retry_after for q in answers[-50:]}) > 5


async def test_the_wait_estimate_comes_true_within_25_percent(room: WaitingRoom):
    """A bounded crowd (200 joins within 0.4 s, 40 admitted a second), each queued one
    keeping the rules (back after Retry-After plus a random extra of up to a quarter of
    it, as the web player does): its first estimate against when it is in fact let in."""
    adm = admission(room, rate=40.0)
    rng = random.Random(6)
    waits: list[tuple[float, float]] = []

    async def listener(delay: float) -> None:
        await asyncio.sleep(delay)
        start = time.monotonic()
        queued = await join(adm)
        if queued is None:
            return
        estimate = queued.estimated_wait_s
        while queued is not None:
            await asyncio.sleep(queued.retry_after * (1 + CLIENT_JITTER * rng.random()))
            queued = await join(adm, queued.ticket)
        waits.append((estimate, time.monotonic() - start))

    await asyncio.gather(*(listener(i * 0.002) for i in range(200)))
    assert len(waits) >= 150
    errors = [abs(estimate - actual) / actual for estimate, actual in waits]
    assert max(errors) <= 0.25, max(errors)
    print(f"wait estimate: worst relative error {max(errors):.1%} over {len(waits)} queued joins")


def test_the_expected_wait_follows_the_clients_rules():
    """Turns of a second or less: back in 1 to 1.25 s. Longer ones: back after each
    Retry-After (at most 30 s) until the turn is past; checked against that client."""
    rng = random.Random(3)
    for turn in (0.2, 1.0, 2.5, 7.3, 29.5, 45.0, 70.0, 200.0):
        runs = []
        for _ in range(4000):
            t = 0.0
            while t < turn:
                t += min(MAX_RETRY_S, max(1, math.ceil(turn - t))) * (
                    1 + CLIENT_JITTER * rng.random()
                )
            runs.append(t)
        assert expected_wait(turn) == pytest.approx(sum(runs) / len(runs), rel=0.02), turn


async def test_the_estimate_uses_the_measured_rate():
    """A Space full half the time moves its line at half the configured rate, and the
    estimate says so (memory backend, on a made-up clock)."""
    now = [0.0]
    room = MemoryWaitingRoom(1800, clock=lambda: now[0])
    presence = FakePresence()
    adm = admission(room, rate=10, max_listeners=100, presence=presence)
    for _ in range(1010):
        await join(adm)
    for step in range(60):  # one minute: full every other second
        presence.concurrent = 100 if step % 2 else 0
        now[0] += 1.0
        await join(adm)
    presence.concurrent = 0
    queued = await join(adm)
    assert queued is not None
    ahead = queued.position
    assert ahead / queued.estimated_wait_s == pytest.approx(5, rel=0.25)
