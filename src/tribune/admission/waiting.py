"""Admission control at join, and a fair waiting room.

Each Space has two limits (``Limits``): new admissions per second and active listeners
(the presence concurrent count). Under both, a join gets its listener token at once; over
either, a signed ticket (``admission.tickets``) with a place in line.

The line of a Space is two numbers and a clock:

* ``issued``: places handed out so far (every arrival after the start takes the next one,
  admitted at once or not, so nobody who arrives later can overtake anyone waiting);
* ``cursor``: places admitted so far. It moves at ``admit_per_s`` while the Space has
  fewer than ``max_listeners`` active listeners, and at most ``burst`` past ``issued``
  (an idle Space admits a small burst at once, then the rate);
* ``rate``: how fast the cursor really moved while people waited (an exponential moving
  average over ``tau_s``): the configured rate, less the time the Space was full. The
  estimate of a wait is the distance to the cursor over that measured rate.

A ticket is admitted when its place is at or behind the cursor (and the Space has room);
its id is then burned for as long as any copy of it could be valid, so a second use gets
``TicketUsed`` (409).

Before a scheduled Space starts, every join gets a *pre-start* ticket whose id goes into
a pre-queue with a random key drawn at issue time. The first join after the start freezes
the pre-queue: its tickets take the first places in the order of their random keys, so
arriving ten minutes early buys nothing over one minute early; later arrivals queue
behind them, first in, first out.

The embedded default keeps all this in process (``MemoryWaitingRoom``); with Redis the
same state lives in Redis and one Lua script decides atomically for every worker
(``admission.redis_waiting``). Both pass the same tests.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tribune.admission.tickets import QueueTicket, Tickets, new_ticket_id
from tribune.exceptions import Conflict, Queued
from tribune.presence.base import Presence

Status = Literal["admitted", "queued", "used", "lost"]

#: the measured rate's memory: older movement of the line counts less and less
TAU_S = 10.0
#: the longest a client is told to wait before asking again (it learns its new place)
MAX_RETRY_S = 30
#: an honest client comes back after a Retry-After plus a random extra of up to this share
#: of it (the web player and bench/_flashcrowd_client.py draw it uniformly; docs/api.md)
CLIENT_JITTER = 0.25
#: a measured rate is never taken below this share of the configured one (a full Space
#: would otherwise promise an endless wait to everyone, and forget it slowly)
_RATE_FLOOR = 0.02


class TicketUsed(Conflict):
    title = "Ticket already used"


@dataclass(frozen=True)
class Limits:
    #: new admissions per second per Space (> 0)
    admit_per_s: float
    #: active listeners per Space; 0 for no limit
    max_listeners: int = 0

    @property
    def burst(self) -> float:
        """Admitted at once into an idle Space: one second's worth (at least one)."""
        return max(1.0, self.admit_per_s)


@dataclass(frozen=True)
class Verdict:
    status: Status
    #: a new arrival's place (live), or its order of arrival (pre-start)
    place: int = 0
    #: places between the cursor and this one while queued (before the start: the rank
    #: in the pre-queue so far)
    gap: float = 0.0
    #: the measured admission rate, places per second
    rate: float = 0.0
    #: queued before the start of the Space
    prestart: bool = False


class WaitingRoom(Protocol):
    async def arrive(
        self, space_id: str, ticket_id: str, key: float, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        """A join without a ticket: admitted at once, or given the next place."""

    async def check(
        self, space_id: str, ticket: QueueTicket, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        """A join with a ticket: admitted (and the ticket burned), still queued, already
        used, or ``lost`` (the line no longer knows it: treat it as a new arrival)."""

    async def close_space(self, space_id: str) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Line:
    issued: int = 0
    cursor: float = 0.0
    last: float = 0.0
    rate: float | None = None
    started: bool = False
    pre_seq: int = 0
    #: before the start: ticket id -> random key; after: ticket id -> place
    pre: dict[str, float] = field(default_factory=dict)
    pre_keys: list[float] = field(default_factory=list)  # sorted: ranks by bisection
    ranks: dict[str, int] = field(default_factory=dict)


class MemoryWaitingRoom:
    """The waiting rooms of one process (the embedded default)."""

    def __init__(self, burn_ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burn_ttl_s = burn_ttl_s
        self.clock = clock
        self._lines: dict[str, _Line] = {}
        self._used: dict[tuple[str, str], float] = {}
        self._used_order: deque[tuple[float, tuple[str, str]]] = deque()

    def _start(self, line: _Line, now: float, limits: Limits) -> None:
        line.started = True
        order = sorted(line.pre.items(), key=lambda item: (item[1], item[0]))
        line.ranks = {ticket_id: i + 1 for i, (ticket_id, _) in enumerate(order)}
        line.pre, line.pre_keys = {}, []
        line.issued = len(order)
        line.cursor = limits.burst  # a Space that just started is idle: the burst is free
        line.last = now

    def _advance(self, line: _Line, now: float, active: int, limits: Limits) -> bool:
        room = limits.max_listeners <= 0 or active < limits.max_listeners
        cap = line.issued + limits.burst
        dt = max(0.0, now - line.last)
        new = min(line.cursor + dt * limits.admit_per_s, cap) if room else line.cursor
        new = max(new, line.cursor)
        rate = line.rate if line.rate is not None else limits.admit_per_s
        if dt > 0 and new < cap:  # people were waiting all along: the line's real pace
            rate += (1 - math.exp(-dt / TAU_S)) * ((new - line.cursor) / dt - rate)
        line.rate, line.cursor, line.last = rate, new, now
        return room

    def _burned(self, space_id: str, ticket_id: str, now: float) -> bool:
        while self._used_order and self._used_order[0][0] <= now:
            _, key = self._used_order.popleft()
            if self._used.get(key, math.inf) <= now:
                del self._used[key]
        return (space_id, ticket_id) in self._used

    def _burn(self, space_id: str, ticket_id: str, now: float) -> None:
        expiry = now + self.burn_ttl_s
        self._used[(space_id, ticket_id)] = expiry
        self._used_order.append((expiry, (space_id, ticket_id)))

    async def arrive(
        self, space_id: str, ticket_id: str, key: float, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        return self._decide(space_id, ticket_id, key, None, live, active, limits)

    async def check(
        self, space_id: str, ticket: QueueTicket, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        return self._decide(space_id, ticket.ticket_id, 0.0, ticket, live, active, limits)

    def _decide(
        self,
        space_id: str,
        ticket_id: str,
        key: float,
        ticket: QueueTicket | None,
        live: bool,
        active: int,
        limits: Limits,
    ) -> Verdict:
        now = self.clock()
        line = self._lines.get(space_id)
        if line is None:
            line = self._lines[space_id] = _Line(last=now)
        if live and not line.started:
            self._start(line, now, limits)
        if not line.started:
            place = 0
            if ticket is None:
                line.pre_seq += 1
                place = line.pre_seq
                line.pre[ticket_id] = key
                bisect.insort(line.pre_keys, key)
            elif ticket_id not in line.pre:
                return Verdict("lost")
            mine = line.pre[ticket_id]
            rank = 1 + bisect.bisect_left(line.pre_keys, mine)
            return Verdict("queued", place, float(rank), limits.admit_per_s, prestart=True)
        room = self._advance(line, now, active, limits)
        rate = line.rate or 0.0
        if ticket is None:
            line.issued += 1
            place = line.issued
        elif ticket.prestart:
            if ticket_id not in line.ranks:
                return Verdict("lost")
            place = line.ranks[ticket_id]
        else:
            place = ticket.place
            if place > line.issued:
                return Verdict("lost")
        if ticket is not None and self._burned(space_id, ticket_id, now):
            return Verdict("used", place, rate=rate)
        if place <= line.cursor and room:
            if ticket is not None:
                self._burn(space_id, ticket_id, now)
            return Verdict("admitted", place, rate=rate)
        return Verdict("queued", place, max(place - line.cursor, 1e-9), rate)

    async def close_space(self, space_id: str) -> None:
        self._lines.pop(space_id, None)

    async def close(self) -> None:
        self._lines.clear()
        self._used.clear()
        self._used_order.clear()


def expected_wait(turn: float) -> float:
    """When a client that keeps the rules is let in, if its turn comes in ``turn`` seconds:
    it comes back after each Retry-After (whole seconds, at most ``MAX_RETRY_S``) plus its
    jitter (a quarter of it at most, an eighth on average), and is admitted at the first
    return after its turn. That, not the turn itself, is what the person waits."""
    stretch = 1 + CLIENT_JITTER / 2
    hop = MAX_RETRY_S * stretch
    # the returns after the longest Retry-After that only learn a new place ...
    hops = max(0, math.ceil((turn - MAX_RETRY_S) / hop))
    rest = turn - hops * hop
    # ... then one more, after a Retry-After of the rest (none if that is past already)
    return hops * hop + (max(1, math.ceil(rest)) * stretch if rest > 0 else 0.0)


class Admission:
    """The join path's gate: the limits, the tickets, and the waiting room behind them."""

    def __init__(
        self,
        room: WaitingRoom,
        tickets: Tickets,
        presence: Presence,
        limits: Limits,
        *,
        count_max_age_s: float = 0.5,
        on_arrival: Callable[[str, int, bool], Awaitable[None]] | None = None,
    ) -> None:
        if limits.admit_per_s <= 0 or limits.max_listeners < 0:
            raise ValueError("need admit_per_s > 0 and max_listeners >= 0")
        self.room = room
        self.tickets = tickets
        self.presence = presence
        self.limits = limits
        self.count_max_age_s = count_max_age_s
        #: told of every first join's place in line (attack mode's arrival rate)
        self.on_arrival = on_arrival
        self._active: dict[str, tuple[float, int]] = {}
        self._fetches: dict[str, asyncio.Future[int]] = {}

    async def active(self, space_id: str) -> int:
        """Active listeners of the Space, read at most every ``count_max_age_s`` (single
        flight: a crowd's joins share one read of the presence count)."""
        if self.limits.max_listeners <= 0:
            return 0
        cached = self._active.get(space_id)
        if cached is not None and time.monotonic() - cached[0] < self.count_max_age_s:
            return cached[1]
        fetch = self._fetches.get(space_id)
        if fetch is None:
            fetch = asyncio.ensure_future(self._count(space_id))
            self._fetches[space_id] = fetch
            fetch.add_done_callback(lambda _: self._fetches.pop(space_id, None))
        return await asyncio.shield(fetch)

    async def _count(self, space_id: str) -> int:
        count = (await self.presence.counts(space_id)).concurrent
        if len(self._active) > 10_000:
            self._active.clear()
        self._active[space_id] = (time.monotonic(), count)
        return count

    async def admit(
        self, space_id: str, ticket: str | None, *, live: bool, starts_in_s: float = 0.0
    ) -> None:
        """Return if the join may go ahead; else raise ``Queued`` (503, with a ticket),
        ``TicketUsed`` (409), ``InvalidTicket`` (403) or ``TicketExpired`` (410)."""
        parsed = self.tickets.verify(ticket, space_id) if ticket is not None else None
        active = await self.active(space_id)
        if parsed is not None:
            verdict = await self.room.check(
                space_id, parsed, live=live, active=active, limits=self.limits
            )
            if verdict.status == "used":
                raise TicketUsed("this ticket was already used: join again, without it")
            if verdict.status != "lost":
                self._settle(verdict, parsed, starts_in_s)
                return
        # The common case is a live Space with room: admitted, no ticket. A ticket id (and
        # the pre-queue's random key) is drawn only where a ticket may be handed out:
        # random bytes are a system call, and this is the hottest path there is.
        ticket_id = "" if live else new_ticket_id()
        key = 0.0 if live else secrets.randbits(52) / (1 << 52)
        verdict = await self.room.arrive(
            space_id, ticket_id, key, live=live, active=active, limits=self.limits
        )
        if self.on_arrival is not None:
            await self.on_arrival(space_id, verdict.place, verdict.prestart)
        if verdict.status == "admitted":
            return
        fresh = QueueTicket(
            space_id, ticket_id or new_ticket_id(), verdict.prestart, verdict.place,
            int(time.time()),
        )  # fmt: skip
        self._settle(verdict, fresh, starts_in_s)

    def _settle(self, verdict: Verdict, ticket: QueueTicket, starts_in_s: float) -> None:
        if verdict.status == "admitted":
            return
        configured = self.limits.admit_per_s
        position = max(1, math.ceil(verdict.gap))
        if verdict.prestart:
            # The place is drawn at the start, from a key drawn now: ``gap``, the rank of
            # this ticket's key so far, puts its turn about gap / rate after the start.
            # Come back then rather than all at the start (the order is the keys', not who
            # asks first): the pre-queue returns spread over its drain instead of arriving
            # in one burst. At most MAX_RETRY_S apart, for a host who starts early.
            turn = max(0.0, starts_in_s) + verdict.gap / configured
            retry = min(MAX_RETRY_S, max(1, math.ceil(turn)))
            wait = expected_wait(turn)
            detail = (
                "the Space has not started; places in line are drawn at random at the start, "
                "so there is no need to come early"
            )
        else:
            turn = verdict.gap / max(verdict.rate, _RATE_FLOOR * configured)
            retry = min(MAX_RETRY_S, max(1, math.ceil(turn)))
            wait = expected_wait(turn)
            detail = "the Space is full right now; you are in line and will be let in in turn"
        raise Queued(
            detail,
            ticket=self.tickets.sign(self.tickets.renewed(ticket)),
            position=position,
            estimated_wait_s=round(wait, 1),
            retry_after=retry,
            prestart=verdict.prestart,
        )

    async def close_space(self, space_id: str) -> None:
        self._active.pop(space_id, None)
        await self.room.close_space(space_id)

    async def close(self) -> None:
        await self.room.close()
