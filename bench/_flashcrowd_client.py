"""The honest client: how a listener joins a Space, for every simulated listener.

Used by bench/flashcrowd.py (the crowd), bench/listeners.py (the LL-HLS fleet) and the
flash-crowd test. The rules are the client contract of docs/operations.md and of attack
mode:

* ``201``: in (the body has the listener token and the URLs).
* ``503`` waiting room: come back after ``Retry-After`` plus a random extra of up to a
  quarter of it, with the newest ticket (``{"ticket": ...}``).
* ``403`` ``proof-of-work-required``: solve the challenge, join again with ``{"pow": ...}``.
* ``429``, or another ``5xx`` that carries ``Retry-After``: wait as told (plus the same
  jitter) and send the same request again.
* a ``5xx`` without ``Retry-After``, or a network error (refused, reset, timed out):
  exponential back-off with full jitter, from 1 s, capped at 30 s.
* ``409`` (ticket already used), ``410`` (expired), ``403`` invalid ticket: the ticket is
  no good, join anew without it. For a listener following these rules they never happen:
  they are recorded as errors.

``join`` does no I/O of its own: it is given ``send(body) -> Answer`` (one POST of the
join), so the same rules drive the crowd's bound connections and listeners.py's edges
with failover. Each request is recorded (:class:`Attempt`) for the benchmark's counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _http import Connection, HttpError
from _latency_player import STALL_TOLERANCE_S
from _stream import PART_S, TARGET_S, _dechunk, whole_boxes

#: the extra wait after Retry-After, as a share of it (at most)
JITTER = 0.25
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
#: a request unanswered this long is a network error (a browser waits longer; the crowd
#: must not pile up connections to a server that stopped)
REQUEST_TIMEOUT_S = 20.0
WAITING_ROOM = "urn:tribune:problem:waiting-room"
POW_REQUIRED = "urn:tribune:problem:proof-of-work-required"
POW_ALGORITHM = "sha256-leading-zero-bits"
_RAND_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#: solved in a thread above this many bits (about 2**bits hashes), inline below
_INLINE_BITS = 12


@dataclass
class Answer:
    """One HTTP answer; ``status`` 0 is a network error (``error`` says which)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def problem(self) -> dict[str, Any]:
        """The JSON body (problem details), or ``{}``."""
        if not self.body or not self.body.startswith(b"{"):
            return {}
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None


Send = Callable[[bytes], Awaitable[Answer]]


@dataclass
class Attempt:
    """One join request as the client saw it."""

    #: "first" (the arrival), "pow" (with a solved challenge), "ticket" (back from the
    #: waiting room), "retry" (the same request after an error, a 429 or a 5xx)
    kind: str
    sent: float  # time.time()
    answered: float
    status: int
    #: the problem type's last part ("waiting-room", "proof-of-work-required", ...)
    problem: str = ""
    position: int | None = None
    estimate: float | None = None
    retry_after: float | None = None
    prestart: bool = False
    #: the client's wait before its next request (Retry-After + jitter, or back-off)
    waited: float = 0.0

    def row(self) -> tuple[Any, ...]:
        return (
            self.kind, self.sent, self.answered, self.status, self.problem, self.position,
            self.estimate, self.retry_after, self.prestart, self.waited,
        )  # fmt: skip


@dataclass
class JoinResult:
    joined: dict[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    #: every proof of work this client solved
    pow_solutions: list[str] = field(default_factory=list)
    #: ... and those the origin took (answered 201 or a place in line): spent, burnt there
    spent_pows: list[str] = field(default_factory=list)
    #: the ticket it was admitted with, if it came through the waiting room
    admitted_ticket: str | None = None
    #: what went wrong for a listener following the rules (None: nothing)
    error: str | None = None
    #: time spent solving challenges (s)
    solving_s: float = 0.0


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(challenge: dict[str, Any], rng: random.Random) -> str:
    """``"{window}:{rand}:{n}"`` for a ``sha256-leading-zero-bits`` challenge: the first
    ``n`` such that SHA-256(prefix + rand + ":" + n) has ``bits`` leading zero bits."""
    if challenge.get("algorithm") != POW_ALGORITHM:
        raise ValueError(f"unknown proof-of-work algorithm {challenge.get('algorithm')!r}")
    bits = int(challenge["bits"])
    prefix = str(challenge["prefix"])
    rand = "".join(rng.choice(_RAND_ALPHABET) for _ in range(16))
    base = hashlib.sha256(f"{prefix}{rand}:".encode("ascii"))
    shift = 256 - bits
    n = 0
    while True:
        h = base.copy()
        h.update(str(n).encode("ascii"))
        if int.from_bytes(h.digest(), "big") >> shift == 0:
            return f"{int(challenge['window'])}:{rand}:{n}"
        n += 1


async def _solve(challenge: dict[str, Any], rng: random.Random, result: JoinResult) -> str:
    began = time.perf_counter()
    if int(challenge.get("bits", 0)) > _INLINE_BITS:
        solution = await asyncio.to_thread(solve, challenge, rng)
    else:
        solution = solve(challenge, rng)
    result.solving_s += time.perf_counter() - began
    result.pow_solutions.append(solution)
    return solution


def _jittered(seconds: float, rng: random.Random) -> float:
    return seconds * (1.0 + JITTER * rng.random())


def _backoff(failures: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(failures - 1))]."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(failures - 1, 16))
    return rng.uniform(0.0, ceiling)


async def join(
    send: Send,
    *,
    deadline: float,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> JoinResult:
    """Join by the rules above until admitted, a hard refusal, or ``deadline``
    (``clock()`` time); never faster than the server asks."""
    result = JoinResult()
    body: dict[str, str] = {}
    kind = "first"
    failures = 0
    ticket: str | None = None
    challenge: dict[str, Any] | None = None
    resolve = False
    while True:
        if resolve:
            # A retry of a join with a proof of work: that solution may be spent (an edge
            # or the origin may have burnt it before failing); the challenge it answered
            # is good until it expires, so solve it again rather than ask for a new one.
            resolve = False
            expires = float(challenge.get("expires_at", 0)) if challenge else 0.0
            if challenge is not None and clock() < expires - 2:
                body = {"pow": await _solve(challenge, rng, result)}
            else:
                body = {}
        payload = json.dumps(body, separators=(",", ":")).encode() if body else b""
        sent = clock()
        answer = await send(payload)
        attempt = Attempt(kind, sent, clock(), answer.status)
        result.attempts.append(attempt)
        problem = answer.problem()
        attempt.problem = str(problem.get("type", "")).rsplit(":", 1)[-1]
        retry_after = answer.retry_after()
        attempt.retry_after = retry_after
        took = answer.status == 201 or problem.get("type") == WAITING_ROOM
        if took and "pow" in body:
            result.spent_pows.append(body["pow"])
        wait: float
        if answer.status == 201:
            try:
                result.joined = json.loads(answer.body)
            except ValueError:
                result.error = "201 without a JSON body"
            else:
                result.admitted_ticket = ticket
            return result
        if answer.status == 503 and problem.get("type") == WAITING_ROOM:
            failures = 0
            attempt.position = problem.get("position")
            attempt.estimate = problem.get("estimated_wait_s")
            attempt.prestart = bool(problem.get("prestart"))
            new_ticket = problem.get("ticket")
            if not isinstance(new_ticket, str) or retry_after is None:
                result.error = "waiting room answer without a ticket or Retry-After"
                return result
            ticket = new_ticket
            body, kind = {"ticket": ticket}, "ticket"
            wait = _jittered(retry_after, rng)
        elif answer.status == 403 and problem.get("type") == POW_REQUIRED:
            # not progress: the back-off of a failing join path goes on growing
            challenge = problem.get("challenge")
            if not isinstance(challenge, dict):
                result.error = "proof of work required without a challenge"
                return result
            ticket = None
            body, kind = {"pow": await _solve(challenge, rng, result)}, "pow"
            wait = 0.0
        elif retry_after is not None and (answer.status == 429 or answer.status >= 500):
            wait, kind = _jittered(retry_after, rng), "retry"
            resolve = "pow" in body
        elif answer.status == 0 or answer.status >= 500:
            failures += 1
            wait, kind = _backoff(failures, rng), "retry"
            resolve = "pow" in body
        elif answer.status in (403, 409, 410) and ticket is not None:
            # the ticket is no good (it never is for an honest client): start again
            result.error = result.error or f"ticket refused: {answer.status} {attempt.problem}"
            ticket = None
            body, kind = {}, "first"
            wait = 0.0
        else:
            detail = problem.get("detail") or answer.error or answer.body[:120].decode("latin-1")
            result.error = f"{answer.status}: {detail}"
            return result
        attempt.waited = wait
        if clock() + wait > deadline:
            result.error = result.error or f"gave up waiting (last answer {answer.status})"
            return result
        if wait > 0:
            await sleep(wait)


# --- connections ------------------------------------------------------------------------


class BoundConnection(Connection):
    """``_http.Connection`` from a chosen source address (Linux routes all of 127/8 to
    ``lo``, so every simulated client can have an address of its own and the edges'
    per-address limits see a crowd)."""

    def __init__(self, host: str, port: int, local: str | None = None) -> None:
        super().__init__(host, port)
        self.local = local

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            local = (self.local, 0) if self.local else None
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, local_addr=local
            )
        return self._reader, self._writer

    async def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        within: float = REQUEST_TIMEOUT_S,
    ) -> Answer:
        """One request; a network error or no answer ``within`` seconds is ``Answer(0)``
        (never raises)."""
        try:
            status, got, data = await asyncio.wait_for(
                self.request(method, path, headers, body), within
            )
        except (HttpError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            return Answer(0, error=type(exc).__name__)
        return Answer(status, got, data)


JSON_HEADERS = {"Content-Type": "application/json"}


def join_sender(conn: BoundConnection, space_id: str, user_agent: str = "") -> Send:
    """``send`` for :func:`join` over ``conn``."""
    path = f"/api/spaces/{space_id}/join"
    headers = dict(JSON_HEADERS)
    if user_agent:
        headers["User-Agent"] = user_agent

    async def send(body: bytes) -> Answer:
        return await conn.send("POST", path, headers, body)

    return send


# --- the stream -------------------------------------------------------------------------


@dataclass
class Playback:
    """One stream (``urls.stream``) as a player heard it."""

    status: int = 0
    error: str | None = None
    #: time.time() of the first whole part (playable audio)
    first_audio: float | None = None
    parts: int = 0
    #: the model player ran dry (a part came later than it was due to play)
    stalls: int = 0
    stall_s: float = 0.0
    #: the longest time between two reads that brought audio, after the first
    max_gap_s: float = 0.0
    #: time.time() of each stall, and of the error if any (for the timeline)
    stall_times: list[float] = field(default_factory=list)
    error_at: float | None = None


async def play(
    host: str,
    port: int,
    local: str | None,
    path: str,
    *,
    until: float | None,
    first_within: float = REQUEST_TIMEOUT_S,
    idle_s: float = 10.0,
) -> Playback:
    """GET the stream from ``local`` and read it: until the first whole part when
    ``until`` is None, else until ``until`` (time.time()), playing it on the web
    player's model clock (bench/_stream.py: it starts :data:`TARGET_S` behind the newest
    audio it got at once; a part arriving after it is due to play is a stall)."""
    out = Playback()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(local, 0) if local else None),
            first_within,
        )
    except (OSError, TimeoutError) as exc:
        out.error, out.error_at = f"connect: {type(exc).__name__}", time.time()
        return out
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), first_within)
        status_line = head.split(b"\r\n", 1)[0].split(b" ")
        out.status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if out.status != 200:
            out.error = f"status {out.status}"
            return out
        chunked = b"chunked" in head.lower()
        raw = tail = b""
        t0 = lead = stall = 0.0
        last = 0.0
        while True:
            now = time.time()
            if until is not None and now >= until:
                return out
            limit = first_within if out.first_audio is None else idle_s
            ending = until is not None and until - now < limit
            if until is not None:
                limit = min(limit, max(0.01, until - now))
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), limit)
            except TimeoutError:
                if ending:
                    return out
                out.error = "no audio" if out.first_audio is None else f"silent {idle_s:g} s"
                return out
            if not data:
                out.error = "disconnected"
                return out
            now = time.time()
            if chunked:
                raw += data
                data, raw = _dechunk(raw)
            buf = tail + data
            boxes, pos = whole_boxes(buf)
            tail = buf[pos:]
            parts = sum(1 for _, kind in boxes if kind == b"mdat")
            if not parts:
                continue
            if out.first_audio is None:
                out.first_audio = t0 = last = now
                # a player starts TARGET_S behind the newest audio it has
                lead = max(0.0, parts * PART_S - TARGET_S)
                out.parts = parts
                if until is None:
                    return out
                continue
            out.max_gap_s = max(out.max_gap_s, now - last)
            last = now
            due = t0 + out.parts * PART_S - lead + stall
            if now > due + STALL_TOLERANCE_S:
                out.stall_times.append(now)
                out.stalls += 1
                out.stall_s += now - due
                stall += now - due
            out.parts += parts
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        out.error = type(exc).__name__
        return out
    except ValueError as exc:  # a bad box
        out.error = f"bad stream: {exc}"
        return out
    finally:
        writer.close()
        if out.error is not None:
            out.error_at = time.time()


# --- addresses --------------------------------------------------------------------------

#: second octets of 127/8 by who uses them: legitimate listeners 127.16.0.0 to
#: 127.31.255.255 (a million addresses), the host and the platform probes, and one /16
#: per kind of attack (so an edge's access log says who sent every line)
LEGIT_FIRST, LEGIT_LAST = 16, 31
HOST_OCTET = 100
PROBE_OCTET = 101
ATTACK_BASE = 200


def legit_address(index: int) -> str:
    """Listener ``index``'s own source address (0-based; a million of them)."""
    if not 0 <= index < (LEGIT_LAST - LEGIT_FIRST + 1) << 16:
        raise ValueError(f"listener index {index} out of range")
    return f"127.{LEGIT_FIRST + (index >> 16)}.{(index >> 8) & 255}.{index & 255}"


def attack_address(kind_index: int, index: int) -> str:
    """Address ``index`` of attack kind ``kind_index`` (its own /16)."""
    return f"127.{ATTACK_BASE + kind_index}.{(index >> 8) & 255}.{index & 255}"


def who(address: str) -> tuple[str, int]:
    """``("legit" | "host" | "probe" | "attack" | "other", attack kind index or -1)``."""
    parts = address.split(".")
    if len(parts) != 4 or parts[0] != "127":
        return "other", -1
    second = int(parts[1])
    if LEGIT_FIRST <= second <= LEGIT_LAST:
        return "legit", -1
    if second == HOST_OCTET:
        return "host", -1
    if second == PROBE_OCTET:
        return "probe", -1
    if second >= ATTACK_BASE:
        return "attack", second - ATTACK_BASE
    return "other", -1
