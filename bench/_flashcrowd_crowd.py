"""One process of the flash crowd (bench/flashcrowd.py): its share of the legitimate
listeners and of the attack traffic.

Every listener arrives at its planned moment from an address of its own, joins by the
honest client's rules (``_flashcrowd_client.join``), then opens the stream
(``urls.stream``) and records when its first whole part arrived. Most close the stream
then; the first ``cohort`` admitted in the process keep it open until the end of the
run, heartbeating like the web page, and count every error and stall they see (they are
the listeners "already playing" while the rest of the crowd comes in).

bench/flashcrowd.py runs the listeners "already playing" in a process of their own (no
attack, nobody else), so that what they measure is the servers and not this process's
own event loop; every process also records how late its event loop ran (``lag``).

The process sends ``("tick", worker, counters)`` every second and ``("done", worker,
results)`` at the end (plain tuples and dicts: they cross a multiprocessing queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from _flashcrowd_attack import Attacker, KindPlan, Loot
from _flashcrowd_client import (
    JSON_HEADERS,
    BoundConnection,
    Playback,
    join,
    join_sender,
    legit_address,
    play,
)

USER_AGENT = "flashcrowd-listener"


#: the niceness of the crowd's processes: below the cluster's API workers (10), which are
#: below the media process, the edges and the control worker (0)
CROWD_NICE = 15


@dataclass(frozen=True)
class CrowdPlan:
    worker: int
    edges: list[tuple[str, int]]
    space_id: str
    #: (listener index, arrival time.time()) of this process's listeners
    arrivals: list[tuple[int, float]]
    #: how many of the first admitted here keep playing to the end
    cohort: int
    #: time.time() when everything stops
    until: float
    #: a listener gives up this long after arriving
    patience_s: float
    attack: list[KindPlan]
    seed: int


@dataclass
class Counters:
    arrived: int = 0
    admitted: int = 0
    audio: int = 0
    failed: int = 0
    join_requests: int = 0
    cohort_playing: int = 0


@dataclass
class Listener:
    """What one legitimate listener went through (``row`` is what crosses the queue)."""

    index: int
    arrival: float
    edge: int
    attempts: list[tuple[Any, ...]] = field(default_factory=list)
    admitted: float | None = None
    error: str | None = None
    cohort: bool = False
    playback: Playback | None = None
    #: (time.time(), status) of each heartbeat (cohort only)
    heartbeats: list[tuple[float, int]] = field(default_factory=list)
    solving_s: float = 0.0

    def row(self) -> dict[str, Any]:
        pb = self.playback
        return {
            "i": self.index,
            "arrival": self.arrival,
            "edge": self.edge,
            "attempts": self.attempts,
            "admitted": self.admitted,
            "error": self.error,
            "cohort": self.cohort,
            "first_audio": pb.first_audio if pb else None,
            "play_error": pb.error if pb else None,
            "parts": pb.parts if pb else 0,
            "stalls": pb.stalls if pb else 0,
            "stall_s": pb.stall_s if pb else 0.0,
            "max_gap_s": pb.max_gap_s if pb else 0.0,
            "stall_times": pb.stall_times if pb else [],
            "play_error_at": pb.error_at if pb else None,
            "heartbeats": self.heartbeats,
            "solving_s": self.solving_s,
        }


class Crowd:
    def __init__(self, plan: CrowdPlan, out: Any) -> None:
        self.plan = plan
        self.out = out
        self.rng = random.Random(plan.seed)
        self.loot = Loot()
        self.counters = Counters()
        self.listeners: list[Listener] = []
        self.cohort_left = plan.cohort
        #: (second, worst event-loop lag in it)
        self.lag: list[tuple[int, float]] = []
        self.attacker = Attacker(plan.edges, plan.space_id, plan.attack, self.loot, plan.seed + 1)

    async def run(self) -> dict[str, Any]:
        ticker = asyncio.create_task(self._tick())
        lag = asyncio.create_task(self._lag())
        attack = asyncio.create_task(self.attacker.run())
        tasks: set[asyncio.Task[None]] = set()
        for index, at in self.plan.arrivals:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._listener(index, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        left = self.plan.until + 5 - time.time()
        for pending in (tasks, {attack}):
            if pending:
                _, late = await asyncio.wait(pending, timeout=max(1.0, left))
                for task in late:
                    task.cancel()
        ticker.cancel()
        lag.cancel()
        return {
            "worker": self.plan.worker,
            "lag": self.lag,
            "listeners": [listener.row() for listener in self.listeners],
            "attack": self.attacker.records,
        }

    async def _lag(self) -> None:
        """How late the event loop runs: the worst oversleep of a 20 ms sleep, per second."""
        second, worst = int(time.time()), 0.0
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.02)
            worst = max(worst, time.perf_counter() - began - 0.02)
            now = int(time.time())
            if now != second:
                self.lag.append((second, worst))
                second, worst = now, 0.0

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            c = self.counters
            self.out.put(
                ("tick", self.plan.worker, {**c.__dict__, "attack_sent": self.attacker.sent})
            )

    async def _listener(self, index: int, arrival: float) -> None:
        plan = self.plan
        edge = index % len(plan.edges)
        host, port = plan.edges[edge]
        local = legit_address(index)
        me = Listener(index, arrival, edge)
        self.listeners.append(me)
        self.counters.arrived += 1
        conn = BoundConnection(host, port, local)
        rng = random.Random(self.rng.random())
        deadline = min(arrival + plan.patience_s, plan.until)
        try:
            result = await join(
                join_sender(conn, plan.space_id, USER_AGENT), deadline=deadline, rng=rng
            )
            me.attempts = [a.row() for a in result.attempts]
            me.solving_s = result.solving_s
            self.counters.join_requests += len(result.attempts)
            self.loot.pows.extend(result.spent_pows)
            if result.joined is None:
                me.error = result.error
                if deadline >= plan.until and me.error and me.error.startswith("gave up"):
                    me.error = "still waiting when the run ended"
                self.counters.failed += 1
                return
            me.admitted = result.attempts[-1].answered
            me.error = result.error  # a refused ticket on the way in, if any
            self.counters.admitted += 1
            token = str(result.joined["listener_token"])
            self.loot.tokens.append(token)
            if result.admitted_ticket:
                self.loot.tickets.append(result.admitted_ticket)
            me.cohort = self.cohort_left > 0
            self.cohort_left -= me.cohort
            stream = str(result.joined["urls"]["stream"])
            if not me.cohort:
                me.playback = await play(host, port, local, stream, until=None)
            else:
                self.counters.cohort_playing += 1
                beats = asyncio.create_task(self._heartbeats(me, conn, result.joined))
                try:
                    me.playback = await play(host, port, local, stream, until=plan.until)
                finally:
                    beats.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beats
                    self.counters.cohort_playing -= 1
            if me.playback.first_audio is not None:
                self.counters.audio += 1
        finally:
            conn.close()

    async def _heartbeats(
        self, me: Listener, conn: BoundConnection, joined: dict[str, Any]
    ) -> None:
        every = float(joined.get("heartbeat_interval_s", 10))
        headers = {**JSON_HEADERS, "Authorization": f"Bearer {joined['listener_token']}"}
        path = str(joined["urls"]["heartbeat"])
        while True:
            await asyncio.sleep(every)
            answer = await conn.send("POST", path, headers)
            me.heartbeats.append((time.time(), answer.status))


def worker_main(worker: int, inbox: Any, out: Any) -> None:
    """The process's entry point (``multiprocessing`` spawn): says it is ready (its
    imports done), then runs the plan it is given."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    out.put(("ready", worker, None))
    plan: CrowdPlan = inbox.get()
    if not plan.cohort:
        # The crowd and the attack stand for machines elsewhere: here they yield the CPU
        # to the cluster (its crowd-facing workers too), so that the load generator does
        # not starve what it measures.
        # The listeners playing throughout (their own process) keep the default.
        os.nice(CROWD_NICE)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        result = asyncio.run(Crowd(plan, out).run())
    except BaseException as exc:
        out.put(("failed", plan.worker, repr(exc)))
        raise
    out.put(("done", plan.worker, result))
