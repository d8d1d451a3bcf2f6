"""Attack mode: when joining costs the joiner something.

A crowd and an attack look alike at the door: a great many first joins from nobody in
particular. In attack mode a Space asks every anonymous first join for a proof of work
(``admission.pow``: about 2**bits hashes, under a second in a browser's Web Worker, a
real cost per join for a bot farm), limits joins per client address, and tells the edges
so through its admission document, so that joins without a solution never reach Python
(``edge/tribune_edge.js``). Listeners already in, joins coming back with a waiting-room
ticket (they paid when they arrived) and signed-in accounts with some history are never
asked.

The operator's setting is ``auto``, ``on`` or ``off`` (TRIBUNE_ATTACK_MODE, changed at run
time through ``/api/operator/attack-mode``, shared by all workers through Redis). In
``auto``, a Space switches itself on when its arrivals pass ``joins_per_s`` and stays on
``hold_s`` after the last second above it. Arrivals are read off the waiting room's own
counter (every first join takes the next place in line, across all workers), so the rate
is the whole deployment's at no extra cost: each worker looks at the places it hands out
about once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args

from redis.asyncio import Redis

from tribune.admission.pow import Pow, PowBurns
from tribune.admission.ratelimit import MemoryRateLimiter
from tribune.exceptions import InvalidInput, RateLimited
from tribune.store.users import User

Mode = Literal["auto", "on", "off"]
MODES: tuple[Mode, ...] = get_args(Mode)
#: how long a worker trusts what it read of the shared state
CACHE_S = 0.5
#: the arrival rate is measured over at least this long
RATE_WINDOW_S = 1.0


@dataclass(frozen=True)
class Operator:
    """What the operator set at run time (None: the configured default)."""

    mode: Mode | None = None
    bits: int | None = None


class AttackState(Protocol):
    """The operator's setting and the Spaces that switched themselves on."""

    async def operator(self) -> Operator: ...

    async def set_operator(self, operator: Operator) -> None: ...

    async def trip(self, space_id: str, hold_s: float) -> None: ...

    async def tripped(self, space_id: str) -> bool: ...

    async def tripped_spaces(self) -> dict[str, float]:
        """Space id -> seconds it stays on."""

    async def close(self) -> None: ...


class MemoryAttackState:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._operator = Operator()
        self._until: dict[str, float] = {}

    async def operator(self) -> Operator:
        return self._operator

    async def set_operator(self, operator: Operator) -> None:
        self._operator = operator

    async def trip(self, space_id: str, hold_s: float) -> None:
        if len(self._until) > 10_000:
            now = self.clock()
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[space_id] = self.clock() + hold_s

    async def tripped(self, space_id: str) -> bool:
        return self._until.get(space_id, 0.0) > self.clock()

    async def tripped_spaces(self) -> dict[str, float]:
        now = self.clock()
        return {k: round(v - now, 1) for k, v in self._until.items() if v > now}

    async def close(self) -> None:
        self._until.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisAttackState:
    """The same in Redis: a hash for the operator, a key with a TTL per tripped Space."""

    OPERATOR = "tribune:attack:operator"
    SPACE = "tribune:attack:space:"

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def operator(self) -> Operator:
        raw = await self.redis.hgetall(self.OPERATOR)
        mode = _text(raw.get(b"mode", b""))
        bits = _text(raw.get(b"bits", b""))
        return Operator(
            next((m for m in MODES if m == mode), None),
            int(bits) if bits else None,
        )

    async def set_operator(self, operator: Operator) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.OPERATOR)
            pipe.hset(
                self.OPERATOR,
                mapping={"mode": operator.mode or "", "bits": str(operator.bits or "")},
            )
            await pipe.execute()

    async def trip(self, space_id: str, hold_s: float) -> None:
        await self.redis.set(self.SPACE + space_id, b"1", px=int(hold_s * 1000))

    async def tripped(self, space_id: str) -> bool:
        return bool(await self.redis.exists(self.SPACE + space_id))

    async def tripped_spaces(self) -> dict[str, float]:
        found: dict[str, float] = {}
        async for key in self.redis.scan_iter(match=self.SPACE + "*", count=1000):
            ttl = await self.redis.pttl(key)
            if ttl > 0:
                found[key.decode()[len(self.SPACE) :]] = round(ttl / 1000, 1)
        return found

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True)
class Policy:
    default_mode: Mode = "auto"
    #: first joins per second (all workers) over which a Space switches on in ``auto``
    joins_per_s: float = 1000.0
    hold_s: float = 300.0
    bits: int = 18
    #: signed-in accounts at least this old skip the proof of work
    trusted_age: timedelta = timedelta(days=7)
    per_address_rate: float = 5.0
    per_address_burst: int = 20


class AttackMode:
    def __init__(
        self,
        state: AttackState,
        burns: PowBurns,
        pow: Pow,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.burns = burns
        self.pow = pow
        self.policy = policy
        self.clock = clock
        self._operator: tuple[float, Operator] | None = None
        self._spaces: dict[str, tuple[float, bool]] = {}
        #: per Space: (when, the place handed out then, before the start?) of the last look
        self._arrivals: dict[str, tuple[float, int, bool]] = {}
        # Per worker on purpose: a backstop behind the edges' shared limit, at no cost of
        # a round trip on the hottest path there is.
        self._addresses = MemoryRateLimiter(clock=clock)

    def trusts(self, user: User | None, now: datetime) -> bool:
        """A signed-in account with history (old enough) skips the proof of work."""
        return user is not None and now - user.created_at >= self.policy.trusted_age

    # -- the setting ----------------------------------------------------------------------

    async def operator(self) -> Operator:
        now = self.clock()
        if self._operator is None or now - self._operator[0] >= CACHE_S:
            self._operator = (now, await self.state.operator())
        return self._operator[1]

    async def mode(self) -> Mode:
        return (await self.operator()).mode or self.policy.default_mode

    async def bits(self) -> int:
        return (await self.operator()).bits or self.policy.bits

    async def set(self, mode: Mode | None, bits: int | None) -> None:
        """The operator's change (None: back to the configured default)."""
        if mode is not None and mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        if bits is not None and not 1 <= bits <= 32:
            raise InvalidInput("pow_bits must be between 1 and 32")
        await self.state.set_operator(Operator(mode, bits))
        self._operator = None
        self._spaces.clear()

    async def status(self) -> dict[str, Any]:
        operator = await self.state.operator()
        return {
            "mode": operator.mode or self.policy.default_mode,
            "configured_mode": self.policy.default_mode,
            "pow_bits": operator.bits or self.policy.bits,
            "joins_per_s": self.policy.joins_per_s,
            "hold_s": self.policy.hold_s,
            "tripped": await self.state.tripped_spaces(),
        }

    async def on_for(self, space_id: str) -> bool:
        mode = await self.mode()
        if mode != "auto":
            return mode == "on"
        now = self.clock()
        cached = self._spaces.get(space_id)
        if cached is None or now - cached[0] >= CACHE_S:
            if len(self._spaces) > 10_000:
                self._spaces.clear()
            cached = self._spaces[space_id] = (now, await self.state.tripped(space_id))
        return cached[1]

    # -- the automatic switch --------------------------------------------------------------

    async def arrived(self, space_id: str, place: int, prestart: bool) -> None:
        """A first join took ``place`` (the line's counter: all workers' arrivals)."""
        now = self.clock()
        last = self._arrivals.get(space_id)
        if last is None or last[2] != prestart or place < last[1]:
            if len(self._arrivals) > 10_000:
                self._arrivals.clear()
            self._arrivals[space_id] = (now, place, prestart)
            return
        elapsed = now - last[0]
        if elapsed < RATE_WINDOW_S:
            return
        self._arrivals[space_id] = (now, place, prestart)
        if (place - last[1]) / elapsed > self.policy.joins_per_s and await self.mode() == "auto":
            await self.state.trip(space_id, self.policy.hold_s)
            self._spaces[space_id] = (now, True)

    # -- at the door -------------------------------------------------------------------------

    async def check_join(
        self,
        space_id: str,
        solution: str | None,
        address: str | None,
        *,
        first: bool,
        trusted: bool,
    ) -> None:
        """Return if this join may go on to the waiting room; ``RateLimited`` (429) or
        ``ProofOfWorkRequired`` (403, with a challenge) if not. Only a ``first`` join (no
        waiting-room ticket) of someone not ``trusted`` (see ``trusts``) is asked for a proof
        of work; every join counts against its address."""
        if not await self.on_for(space_id):
            return
        if address is not None:
            decision = await self._addresses.hit(
                address, self.policy.per_address_rate, self.policy.per_address_burst
            )
            if not decision.allowed:
                raise RateLimited(
                    "too many joins from your address: wait a moment and try again",
                    decision.retry_after,
                )
        if not first or trusted:
            return
        bits = await self.bits()
        if solution is None:
            raise self.pow.refuse(
                space_id,
                bits,
                "this Space is taking joins under attack protection: solve the challenge "
                "(your browser does it in a moment) and join again with it",
            )
        key = self.pow.check(space_id, solution, bits)
        if not await self.burns.burn(key):
            raise self.pow.refuse(space_id, bits, "this proof of work was already used: solve anew")

    async def document(self, space_id: str) -> dict[str, Any]:
        """The admission document's attack part: what an edge or a browser needs."""
        if not await self.on_for(space_id):
            return {"attack_mode": False, "challenge": None}
        return {"attack_mode": True, "challenge": self.pow.challenge(space_id, await self.bits())}

    async def close(self) -> None:
        await self.state.close()
        await self.burns.close()
