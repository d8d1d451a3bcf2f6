"""Proof of work for anonymous joins in attack mode: a hashcash over a server seed.

A challenge is public and stateless. Time is cut in windows of ``WINDOW_S`` seconds; the
seed of a Space in window ``w`` is an HMAC of ``"{space}:{w}"`` under a key derived from
the secret for this use alone, so nobody can compute next minute's seed and stock up
solutions ahead of an attack. The client picks a random ``rand`` and counts ``n`` until

    SHA-256(prefix + rand + ":" + n)      prefix = "tribune-pow:v1:{space}:{w}:{seed}:"

has at least ``bits`` leading zero bits (about ``2**bits`` hashes: the browser does it in
a Web Worker), then joins with ``{"pow": "{w}:{rand}:{n}"}``. Checking it costs one HMAC
and one hash, with the key alone: an edge checks it too (``edge/tribune_edge.js``) and the
origin checks it again. A solution is good for the window it was made in and the next
one, once: its ``(space, w, rand)`` is burned (``PowBurns``), in process or in Redis.

Written here: a hashcash is a few lines over ``hashlib``/``hmac``, and the format has to
match the edge's njs byte for byte, which no library would promise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from redis.asyncio import Redis

from tribune.admission.tokens import derive_key
from tribune.exceptions import ProofOfWorkRequired

ALGORITHM = "sha256-leading-zero-bits"
WINDOW_S = 60
#: a used solution is remembered this long: past the end of the windows it is valid in
BURN_S = 3 * WINDOW_S
_FORMAT = re.compile(r"^([0-9]{1,12}):([A-Za-z0-9_-]{8,64}):([0-9]{1,16})$")
#: the longest ``pow`` string a client may send (the format's own maximum)
MAX_POW_CHARS = 12 + 1 + 64 + 1 + 16


def pow_key(secret: bytes) -> bytes:
    """The key seeds are made with (edges get it, never the secret)."""
    return derive_key(secret, "pow-seed")


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(prefix: str, bits: int, rand: str) -> int:
    """The first ``n`` for ``rand`` that meets ``bits`` (clients and tests; ~2**bits hashes)."""
    base = hashlib.sha256(f"{prefix}{rand}:".encode())
    n = 0
    while True:
        h = base.copy()
        h.update(str(n).encode())
        if leading_zero_bits(h.digest()) >= bits:
            return n
        n += 1


class PowBurns(Protocol):
    async def burn(self, key: str) -> bool:
        """True the first time ``key`` is seen within ``BURN_S``; False after."""

    async def close(self) -> None: ...


class MemoryPowBurns:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    async def burn(self, key: str) -> bool:
        now = self.clock()
        while self._order and self._order[0][0] <= now:
            self._seen.discard(self._order.popleft()[1])
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append((now + BURN_S, key))
        return True

    async def close(self) -> None:
        self._seen.clear()
        self._order.clear()


class RedisPowBurns:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def burn(self, key: str) -> bool:
        return bool(await self.redis.set(f"tribune:pow:{key}", b"1", nx=True, ex=BURN_S))

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True)
class Pow:
    """Makes challenges and checks solutions for one secret."""

    key: bytes
    clock: Callable[[], float] = time.time

    def window(self, now: float | None = None) -> int:
        return int((self.clock() if now is None else now) // WINDOW_S)

    def seed(self, space_id: str, window: int) -> str:
        mac = hmac.new(self.key, f"{space_id}:{window}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:12]).rstrip(b"=").decode()

    def prefix(self, space_id: str, window: int) -> str:
        return f"tribune-pow:v1:{space_id}:{window}:{self.seed(space_id, window)}:"

    def challenge(self, space_id: str, bits: int) -> dict[str, Any]:
        w = self.window()
        return {
            "algorithm": ALGORITHM,
            "bits": bits,
            "window": w,
            "prefix": self.prefix(space_id, w),
            "expires_at": (w + 2) * WINDOW_S,
        }

    def check(self, space_id: str, solution: str, bits: int) -> str:
        """The key to burn for a good solution; ``ProofOfWorkRequired`` (with a fresh challenge)
        saying what is wrong otherwise."""
        match = _FORMAT.match(solution)
        if match is None:
            self._refuse(space_id, bits, "malformed proof of work: give {window}:{rand}:{n}")
        window, rand, n = int(match[1]), match[2], match[3]
        now = self.window()
        if window not in (now, now - 1):
            self._refuse(space_id, bits, "this proof of work is for another minute: solve anew")
        text = f"{self.prefix(space_id, window)}{rand}:{n}"
        if leading_zero_bits(hashlib.sha256(text.encode()).digest()) < bits:
            self._refuse(space_id, bits, f"this proof of work has fewer than {bits} zero bits")
        return f"{space_id}:{window}:{rand}"

    def refuse(self, space_id: str, bits: int, detail: str) -> ProofOfWorkRequired:
        return ProofOfWorkRequired(detail, self.challenge(space_id, bits))

    def _refuse(self, space_id: str, bits: int, detail: str) -> NoReturn:
        raise self.refuse(space_id, bits, detail)
