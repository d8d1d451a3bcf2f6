"""The attack traffic mixed into the flash crowd (bench/flashcrowd.py).

Each kind comes from its own /16 of 127/8 (``_flashcrowd_client.attack_address``), so an
edge's access log tells every attack request apart by its address alone, and from a
number of addresses that suits it: a botnet for forgeries and replays, a handful of
addresses for the flood. Every request carries ``User-Agent: flashcrowd-attack/<kind>``.

==================  ==============================================================
kind                what it sends
==================  ==============================================================
forged-token        ``GET /listen/{space}/{tbl_ forgery}`` and ``/hls/.../live.m3u8``
forged-ticket       a join with a well-formed ``tbq_`` ticket of this Space, bad signature
forged-pow          a join with a proof of work that is malformed, for a future window,
                    or too weak for the current challenge (learnt from a 403)
replayed-token      a legitimate listener's token on ``/listen/`` from another address
copied-ticket       a ticket a legitimate listener was already admitted with
replayed-pow        a proof of work a legitimate listener already used
flood               joins without anything, as fast as the plan says, from 4 addresses
junk                random paths, garbage and non-JSON bodies, wrong methods, bodies over
                    the edge's and the origin's size limits
==================  ==============================================================

The replays take what the legitimate listeners of the same process used
(:class:`Loot`), so they start once there is something to replay.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from _flashcrowd_client import (
    JSON_HEADERS,
    POW_REQUIRED,
    Answer,
    BoundConnection,
    attack_address,
    leading_zero_bits,
)

KINDS = (
    "forged-token",
    "forged-ticket",
    "forged-pow",
    "replayed-token",
    "copied-ticket",
    "replayed-pow",
    "flood",
    "junk",
)
#: share of the attack requests per kind
WEIGHTS = {
    "forged-token": 0.15,
    "forged-ticket": 0.10,
    "forged-pow": 0.10,
    "replayed-token": 0.10,
    "copied-ticket": 0.10,
    "replayed-pow": 0.10,
    "flood": 0.20,
    "junk": 0.15,
}
#: addresses per kind (over all crowd processes)
ADDRESSES = {kind: 4 if kind == "flood" else 256 for kind in KINDS}
#: kinds that replay what legitimate listeners used: they start once that exists
REPLAYS = ("replayed-token", "copied-ticket", "replayed-pow")
#: requests of one kind in flight at once in one process (an outage must not pile up
#: thousands of hanging connections)
IN_FLIGHT = 128
_STATUS_TIMEOUT_S = 10.0
#: a body over the edge's client_max_body_size (128k), and one under it but over the
#: origin's TRIBUNE_MAX_BODY_BYTES (64 KiB)
_HUGE = b'{"ticket":"' + b"x" * 200_000 + b'"}'
_LARGE = b'{"ticket":"' + b"x" * 100_000 + b'"}'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Loot:
    """What the legitimate listeners of this process used, for the replays."""

    tokens: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))
    tickets: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))
    pows: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))


@dataclass(frozen=True)
class KindPlan:
    kind: str
    #: requests this process sends, evenly from ``begin`` to ``end`` (time.time())
    count: int
    begin: float
    end: float
    #: address indices of the kind this process uses
    addresses: tuple[int, ...]


@dataclass
class _Conns:
    """Kept-alive connections per (address, edge)."""

    free: dict[tuple[str, int], list[BoundConnection]] = field(default_factory=dict)

    def take(self, local: str, edge: int, host: str, port: int) -> BoundConnection:
        pool = self.free.get((local, edge))
        return pool.pop() if pool else BoundConnection(host, port, local)

    def give(self, local: str, edge: int, conn: BoundConnection) -> None:
        self.free.setdefault((local, edge), []).append(conn)

    def close(self) -> None:
        for pool in self.free.values():
            for conn in pool:
                conn.close()
        self.free.clear()


class Attacker:
    """Sends this process's share of every kind, recording ``(kind index, sent,
    answered, status, variant)`` per request."""

    def __init__(
        self,
        edges: list[tuple[str, int]],
        space_id: str,
        plans: list[KindPlan],
        loot: Loot,
        seed: int,
    ) -> None:
        self.edges = edges
        self.space_id = space_id
        self.plans = plans
        self.loot = loot
        self.rng = random.Random(seed)
        self.records: list[tuple[int, float, float, int, str]] = []
        self.challenge: dict[str, Any] | None = None
        self.sent = 0
        self._conns = _Conns()

    async def run(self) -> None:
        try:
            await asyncio.gather(*(self._kind(plan) for plan in self.plans if plan.count))
        finally:
            self._conns.close()

    async def _kind(self, plan: KindPlan) -> None:
        index = KINDS.index(plan.kind)
        slots = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        step = (plan.end - plan.begin) / max(1, plan.count)
        done = 0
        while done < plan.count:
            due = plan.begin + done * step
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if plan.kind in REPLAYS and not self._has_loot(plan.kind):
                if time.time() > plan.end:
                    return  # nothing was ever there to replay
                await asyncio.sleep(0.2)
                continue
            await slots.acquire()
            local = attack_address(index, plan.addresses[done % len(plan.addresses)])
            task = asyncio.create_task(self._one(index, plan.kind, local))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
            done += 1
        if tasks:
            await asyncio.wait(tasks)

    def _has_loot(self, kind: str) -> bool:
        pool = {
            "replayed-token": self.loot.tokens,
            "copied-ticket": self.loot.tickets,
            "replayed-pow": self.loot.pows,
        }[kind]
        return bool(pool)

    async def _one(self, index: int, kind: str, local: str) -> None:
        edge = self.rng.randrange(len(self.edges))
        host, port = self.edges[edge]
        sent = time.time()
        self.sent += 1
        variant, answer = await getattr(self, "_" + kind.replace("-", "_"))(local, edge, host, port)
        self.records.append((index, sent, time.time(), answer.status, variant))
        if answer.status == 403 and (self.challenge is None or self.rng.random() < 0.05):
            problem = answer.problem()
            if problem.get("type") == POW_REQUIRED and isinstance(problem.get("challenge"), dict):
                self.challenge = problem["challenge"]

    # -- sending ----------------------------------------------------------------------

    async def _request(
        self,
        local: str,
        edge: int,
        host: str,
        port: int,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        kind: str = "",
    ) -> Answer:
        conn = self._conns.take(local, edge, host, port)
        sent_headers = {"User-Agent": f"flashcrowd-attack/{kind}", **(headers or {})}
        answer = await conn.send(method, path, sent_headers, body, within=_STATUS_TIMEOUT_S)
        if answer.status:
            self._conns.give(local, edge, conn)
        return answer

    async def _join(
        self, local: str, edge: int, host: str, port: int, body: bytes, kind: str
    ) -> Answer:
        path = f"/api/spaces/{self.space_id}/join"
        return await self._request(local, edge, host, port, "POST", path, body, JSON_HEADERS, kind)

    async def _status_only(self, local: str, host: str, port: int, path: str, kind: str) -> Answer:
        """GET ``path`` and read only the status line (a stream's body never ends)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(local, 0)), _STATUS_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            return Answer(0, error=type(exc).__name__)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"User-Agent: flashcrowd-attack/{kind}\r\nConnection: close\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _STATUS_TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return Answer(0, error="no answer")
        finally:
            writer.transport.abort()
        first = head.split(b"\r\n", 1)[0].split(b" ")
        return Answer(int(first[1]) if len(first) > 1 and first[1].isdigit() else 0)

    # -- the kinds ----------------------------------------------------------------------

    def _make_token(self) -> str:
        expires = int(time.time()) + 3600
        payload = f"v1:{self.space_id}:g_{secrets.token_hex(8)}:{expires}".encode()
        return f"tbl_{_b64(payload)}.{_b64(secrets.token_bytes(16))}"

    async def _forged_token(
        self, local: str, edge: int, host: str, port: int
    ) -> tuple[str, Answer]:
        token = self._make_token()
        if self.rng.random() < 0.5:
            path = f"/listen/{self.space_id}/{token}"
            return "listen", await self._status_only(local, host, port, path, "forged-token")
        path = f"/hls/{self.space_id}/{token}/live.m3u8"
        return "hls", await self._request(local, edge, host, port, "GET", path, kind="forged-token")

    async def _forged_ticket(
        self, local: str, edge: int, host: str, port: int
    ) -> tuple[str, Answer]:
        kind = self.rng.choice("lp")
        place = self.rng.randrange(1, 50)  # the front of the line, of course
        payload = f"v1:{self.space_id}:{secrets.token_hex(8)}:{kind}:{place}:{int(time.time())}"
        ticket = f"tbq_{_b64(payload.encode())}.{_b64(secrets.token_bytes(16))}"
        body = b'{"ticket":"' + ticket.encode() + b'"}'
        return "ticket", await self._join(local, edge, host, port, body, "forged-ticket")

    async def _forged_pow(self, local: str, edge: int, host: str, port: int) -> tuple[str, Answer]:
        rand = secrets.token_urlsafe(12)
        window = int(time.time() // 60)
        choice = self.rng.random()
        challenge = self.challenge
        if challenge is not None and choice < 0.5:
            variant = "too-weak"
            prefix, bits, window = challenge["prefix"], int(challenge["bits"]), challenge["window"]
            n = self.rng.randrange(10**6)
            while (
                leading_zero_bits(hashlib.sha256(f"{prefix}{rand}:{n}".encode()).digest()) >= bits
            ):
                n += 1
            solution = f"{window}:{rand}:{n}"
        elif choice < 0.75:
            variant, solution = "future-window", f"{window + 7}:{rand}:{self.rng.randrange(10**6)}"
        else:
            variant, solution = (
                "malformed",
                self.rng.choice(
                    [f"{window}:{rand}", "x" * 40, f"{window}:{rand}:-1", f"{window}:ab:1", "0:0:0"]
                ),
            )
        body = b'{"pow":"' + solution.encode() + b'"}'
        return variant, await self._join(local, edge, host, port, body, "forged-pow")

    async def _replayed_token(
        self, local: str, edge: int, host: str, port: int
    ) -> tuple[str, Answer]:
        token = self.rng.choice(self.loot.tokens)
        path = f"/listen/{self.space_id}/{token}"
        return "listen", await self._status_only(local, host, port, path, "replayed-token")

    async def _copied_ticket(
        self, local: str, edge: int, host: str, port: int
    ) -> tuple[str, Answer]:
        body = b'{"ticket":"' + self.rng.choice(self.loot.tickets).encode() + b'"}'
        return "ticket", await self._join(local, edge, host, port, body, "copied-ticket")

    async def _replayed_pow(
        self, local: str, edge: int, host: str, port: int
    ) -> tuple[str, Answer]:
        body = b'{"pow":"' + self.rng.choice(self.loot.pows).encode() + b'"}'
        return "pow", await self._join(local, edge, host, port, body, "replayed-pow")

    async def _flood(self, local: str, edge: int, host: str, port: int) -> tuple[str, Answer]:
        return "join", await self._join(local, edge, host, port, b"", "flood")

    async def _junk(self, local: str, edge: int, host: str, port: int) -> tuple[str, Answer]:
        join = f"/api/spaces/{self.space_id}/join"
        pick = self.rng.randrange(7)
        if pick == 0:
            path = self.rng.choice(
                ["/wp-login.php", "/.env", "/admin", "/api/v1/users", "/cgi-bin/luci",
                 f"/{secrets.token_hex(6)}", f"/api/spaces/{secrets.token_hex(4)}/join",
                 f"/api/{secrets.token_hex(3)}/{secrets.token_hex(3)}"]
            )  # fmt: skip
            return "random-path", await self._request(
                local, edge, host, port, "GET", path, kind="junk"
            )
        if pick == 1:
            body = secrets.token_bytes(self.rng.randrange(16, 400))
            return "garbage-body", await self._join(local, edge, host, port, body, "junk")
        if pick == 2:
            body = b'{"ticket": [1, 2, {"pow": null}], "x": ' + b"9" * 300 + b"}"
            return "wrong-json", await self._join(local, edge, host, port, body, "junk")
        if pick == 3:
            method = self.rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
            return "wrong-method", await self._request(
                local, edge, host, port, method, join, kind="junk"
            )
        if pick == 4:
            return "huge-body", await self._join(local, edge, host, port, _HUGE, "junk")
        if pick == 5:
            return "large-body", await self._join(local, edge, host, port, _LARGE, "junk")
        headers = {"Content-Type": "text/plain"}
        return "text-body", await self._request(
            local, edge, host, port, "POST", join, b"let me in", headers, "junk"
        )


def plan_kinds(
    total: int,
    *,
    begin: float,
    end: float,
    replay_begin: float,
    procs: int,
    worker: int,
) -> list[KindPlan]:
    """This process's share of ``total`` attack requests (all processes), by kind: each
    kind evenly over ``begin``-``end`` (the replays from ``replay_begin``)."""
    plans = []
    for kind in KINDS:
        count = round(total * WEIGHTS[kind])
        mine = count // procs + (worker < count % procs)
        addresses = tuple(i for i in range(ADDRESSES[kind]) if i % procs == worker) or (worker,)
        start = replay_begin if kind in REPLAYS else begin
        plans.append(KindPlan(kind, mine, start, end, addresses))
    return plans
