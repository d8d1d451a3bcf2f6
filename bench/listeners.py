"""Simulated LL-HLS listeners: thousands of players from a few cores.

    .venv/bin/python bench/listeners.py --url http://127.0.0.1:8000 --listeners 2000
    .venv/bin/python bench/listeners.py --serve --listeners 500 --duration 30

Each listener does what hls.js does in low-latency mode, over one kept-alive connection
(``_http.py``; a general client would cost more CPU than the server under test):

1. joins as a guest (``POST /api/spaces/{id}/join``) by the honest client's rules
   (``_flashcrowd_client.join``, shared with bench/flashcrowd.py): a 503 waiting room is
   waited out (``Retry-After`` plus up to 25 % jitter, coming back with the newest
   ticket), a 403 proof-of-work challenge is solved, errors back off exponentially with
   full jitter from 1 s to 30 s; then heartbeats when told to;
2. loads the playlist and starts PART-HOLD-BACK behind its live edge;
3. for every part: if the last playlist did not list it, a blocking reload
   (``?_HLS_msn=&_HLS_part=`` of the part it wants, answered once the part exists), then
   the part itself.

It plays on a model clock from the moment its first part arrives: a part that arrives
after it is due to play is a stall (playback then waits for it, as a player's would).
Reported: listeners joined and playing, requests per second, errors (non-2xx or
connection failures), stalls, the *age* of each part when it arrived (arrival time
minus the wall-clock time its last sample was made, from EXT-X-PROGRAM-DATE-TIME: what a
listener playing at the very edge would be behind) and the time blocking reloads waited.
Glass-to-glass latency is age + the player's hold-back + the ingest path (see
bench/latency.py for that end to end). Without ``--space`` it listens to the first live
Space (``--serve`` starts ``tribune serve --demo`` for one, pinned to ``--server-cpu``).

Listeners are spread over ``--procs`` processes (asyncio + uvloop each) and arrive
evenly over ``--ramp`` seconds; with ``--own-addresses`` each comes from an address of
its own in 127.16.0.0/12 (a server on loopback only), so that per-address limits (an
edge's, attack mode's) see a crowd rather than one client. Results: a table, and
``bench/results/listeners.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import random
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _flashcrowd_client import JSON_HEADERS, Answer, BoundConnection, legit_address  # noqa: E402
from _flashcrowd_client import join as honest_join  # noqa: E402
from _http import Connection, HttpError  # noqa: E402
from _latency_hls import parse_playlist, percentiles  # noqa: E402

RESULTS = BENCH_DIR / "results"
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"')
SAMPLE_CAP = 20_000  # ages kept per process (reservoir), enough for percentiles


@dataclass
class Options:
    url: str
    space: str | None
    listeners: int
    duration: float
    ramp: float
    procs: int
    #: each listener from an address of its own in 127.16.0.0/12 (a server on 127/8 only),
    #: as a crowd looks to per-address limits (attack mode's, the edge's)
    own_addresses: bool = False


@dataclass
class Stats:
    joined: int = 0
    playing: int = 0
    requests: int = 0
    errors: int = 0
    #: waiting-room answers, proofs of work solved, join requests after the first
    queued: int = 0
    solved: int = 0
    join_retries: int = 0
    stalls: int = 0
    stall_s: float = 0.0
    parts: int = 0
    ages: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def sample(self, bucket: list[float], value: float) -> None:
        if len(bucket) < SAMPLE_CAP:
            bucket.append(value)
        else:
            slot = random.randrange(self.parts + 1)
            if slot < SAMPLE_CAP:
                bucket[slot] = value

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


class Listener:
    """One simulated player. ``servers`` are the edges it may use, first choice first: when
    a request to the one in use fails at the connection (an edge gone), it moves to the
    next and carries on where it was (its listener token is valid on every edge)."""

    def __init__(
        self,
        servers: list[tuple[str, int]],
        space: str,
        stats: Stats,
        until: float,
        local: str | None = None,
    ) -> None:
        self.servers = servers
        self.using = 0
        #: the source address (None: the system's choice)
        self.local = local
        self.conn: Connection = BoundConnection(*servers[0], local)
        self.space = space
        self.stats = stats
        self.until = until
        #: monotonic arrival time of each part (for tests of failover)
        self.arrivals: list[float] = []
        self.failovers = 0

    async def exchange(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        self.stats.requests += 1
        try:
            return await self.conn.request(method, path, headers, body)
        except (HttpError, OSError):
            if len(self.servers) == 1:
                raise
            self.conn.close()
            self.using = (self.using + 1) % len(self.servers)
            self.conn = BoundConnection(*self.servers[self.using], self.local)
            self.failovers += 1
            self.stats.requests += 1
            return await self.conn.request(method, path, headers, body)

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        status, _, body = await self.exchange(method, path, headers)
        return status, body

    async def send_join(self, body: bytes) -> Answer:
        """One join request, for the honest client's rules (a network error is status 0)."""
        try:
            status, headers, data = await self.exchange(
                "POST", f"/api/spaces/{self.space}/join", JSON_HEADERS, body
            )
        except (HttpError, OSError) as exc:
            self.conn.close()
            return Answer(0, error=type(exc).__name__)
        return Answer(status, headers, data)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return await self.request("GET", path, headers)

    async def run(self) -> None:
        stats = self.stats
        try:
            result = await honest_join(
                self.send_join, deadline=self.until, rng=random.Random(), clock=time.monotonic
            )
            stats.queued += sum(a.problem == "waiting-room" for a in result.attempts)
            stats.solved += len(result.pow_solutions)
            stats.join_retries += len(result.attempts) - 1
            if result.joined is None:
                stats.error(f"join: {result.error}")
                return
            joined = result.joined
            stats.joined += 1
            await self.listen(joined)
        except (HttpError, OSError, ValueError) as exc:
            stats.error(type(exc).__name__)
        finally:
            self.conn.close()

    async def listen(self, joined: dict[str, Any]) -> None:
        stats = self.stats
        playlist = joined["urls"]["playlist"]
        folder = playlist.rsplit("/", 1)[0]
        token = joined["listener_token"]
        beat_every = float(joined["heartbeat_interval_s"])
        next_beat = time.monotonic() + beat_every
        status, body = await self.get(playlist)
        if status != 200:
            stats.error(f"playlist {status}")
            return
        pl = parse_playlist(body.decode())
        listed = pl.parts()
        if not listed:
            stats.error("no parts")
            return
        part_s = listed[-1].duration
        per_segment = max(len(s.parts) for s in pl.segments) if pl.segments else 6
        ref = listed[-1]
        ref_index = ref.msn * per_segment + ref.index
        hold = pl.part_hold_back or 3 * part_s
        back = min(len(listed), max(1, round(hold / part_s)))
        msn, index = listed[-back].msn, listed[-back].index
        newest = (ref.msn, ref.index)
        due: float | None = None
        playing = False
        try:
            while time.monotonic() < self.until:
                if (msn, index) > newest:  # not listed yet: wait for it at the origin/edge
                    asked = time.monotonic()
                    status, body = await self.get(f"{playlist}?_HLS_msn={msn}&_HLS_part={index}")
                    if status != 200:
                        stats.error(f"reload {status}")
                        await asyncio.sleep(0.5)
                        continue
                    stats.sample(stats.waits, time.monotonic() - asked)
                    hint = _HINT.search(body.decode("latin-1"))
                    if hint is not None:
                        hinted = (int(hint.group(1)), int(hint.group(2)))
                        newest = max(newest, _before(hinted, per_segment))
                    if (msn, index) > newest:
                        continue  # the reload timed out without the part: ask again
                status, _ = await self.get(f"{folder}/part{msn}.{index}.m4s")
                arrived = time.monotonic()
                if status != 200:
                    stats.error(f"part {status}")
                    await asyncio.sleep(0.5)
                    continue
                self.arrivals.append(arrived)
                made = ref.pdt + ((msn * per_segment + index) - ref_index + 1) * part_s
                stats.parts += 1
                stats.sample(stats.ages, time.time() - made)
                if due is None:
                    due = arrived
                    playing = True
                    stats.playing += 1
                elif arrived > due + 0.005:
                    stats.stalls += 1
                    stats.stall_s += arrived - due
                    due = arrived
                due += part_s
                index += 1
                if index == per_segment:
                    msn, index = msn + 1, 0
                if time.monotonic() >= next_beat:
                    next_beat += beat_every
                    s, _ = await self.request(
                        "POST",
                        joined["urls"]["heartbeat"],
                        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    )
                    if s != 200:
                        stats.error(f"heartbeat {s}")
        finally:
            if playing:
                stats.playing -= 1


def _before(part: tuple[int, int], per_segment: int) -> tuple[int, int]:
    """The part before ``part`` (the newest that exists when ``part`` is hinted)."""
    msn, index = part
    return (msn, index - 1) if index else (msn - 1, per_segment - 1)


def _worker(opts: Options, wid: int, share: int, start_at: float, out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_work(opts, wid, share, start_at, out))


async def _work(opts: Options, wid: int, share: int, start_at: float, out: Any) -> None:
    url = urllib.parse.urlsplit(opts.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    stats = Stats()
    until = start_at + opts.ramp + opts.duration
    assert opts.space is not None

    async def one(k: int) -> None:
        await asyncio.sleep(max(0.0, start_at + opts.ramp * k / max(1, share) - time.monotonic()))
        local = legit_address(k * opts.procs + wid) if opts.own_addresses else None
        await Listener([(host, port)], opts.space or "", stats, until, local).run()

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            out.put(("tick", wid, _counters(stats)))

    reporter = asyncio.create_task(report())
    # time.monotonic is shared by processes on one machine (CLOCK_MONOTONIC)
    await asyncio.gather(*(one(k) for k in range(share)))
    reporter.cancel()
    out.put(("done", wid, {**_counters(stats), "ages": stats.ages, "waits": stats.waits,
                           "error_kinds": stats.error_kinds}))  # fmt: skip


def _counters(stats: Stats) -> dict[str, Any]:
    return {
        "joined": stats.joined, "playing": stats.playing, "requests": stats.requests,
        "errors": stats.errors, "stalls": stats.stalls, "stall_s": stats.stall_s,
        "parts": stats.parts, "queued": stats.queued, "solved": stats.solved,
        "join_retries": stats.join_retries,
    }  # fmt: skip


def run(opts: Options, *, quiet: bool = False) -> dict[str, Any]:
    """Run the fleet; returns the summary (also what ``main`` writes as JSON)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.monotonic() + 1.0
    shares = [
        opts.listeners // opts.procs + (i < opts.listeners % opts.procs) for i in range(opts.procs)
    ]
    procs = [
        ctx.Process(target=_worker, args=(opts, wid, share, start_at, out))
        for wid, share in enumerate(shares)
        if share
    ]
    for p in procs:
        p.start()
    latest: dict[int, dict[str, Any]] = {}
    finals: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    last_requests, last_t, last_print = 0, time.monotonic(), 0.0
    tty = sys.stderr.isatty()
    deadline = start_at + opts.ramp + opts.duration + 60
    while len(finals) < len(procs) and time.monotonic() < deadline:
        try:
            kind, wid, data = out.get(timeout=1.0)
        except queue.Empty:  # nothing this second
            continue
        latest[wid] = data
        if kind == "done":
            finals.append(data)
            continue
        now = time.monotonic()
        total = _sum(latest.values())
        rate = (total["requests"] - last_requests) / max(1e-6, now - last_t)
        if now - last_t >= 1.0:
            last_requests, last_t = total["requests"], now
            timeline.append({"t": round(now - start_at, 1), "playing": total["playing"],
                             "req_per_s": round(rate), "errors": total["errors"],
                             "stalls": total["stalls"]})  # fmt: skip
        if not quiet and (tty or now - last_print >= 5):
            last_print = now
            done = total["joined"] / opts.listeners
            bar = "#" * round(30 * done) + "." * (30 - round(30 * done))
            line = (
                f"[{bar}] {total['playing']:>6}/{opts.listeners} playing  "
                f"{rate:>7.0f} req/s  errors {total['errors']}  stalls {total['stalls']}"
            )
            end = "" if tty else "\n"
            print(f"\r{line}" if tty else line, end=end, file=sys.stderr, flush=True)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    if tty and not quiet:
        print(file=sys.stderr)
    total = _sum(finals)
    ages = [a for f in finals for a in f["ages"]]
    waits = [w for f in finals for w in f["waits"]]
    kinds: dict[str, int] = {}
    for f in finals:
        for k, v in f["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    return {
        "listeners": opts.listeners,
        "joined": total["joined"],
        "requests": total["requests"],
        "requests_per_s": total["requests"] / max(1e-6, opts.ramp + opts.duration),
        "errors": total["errors"],
        "error_kinds": kinds,
        "waiting_room_answers": total["queued"],
        "proofs_of_work": total["solved"],
        "join_retries": total["join_retries"],
        "stalls": total["stalls"],
        "stall_s": total["stall_s"],
        "parts": total["parts"],
        "part_age_s": percentiles(ages),
        "blocking_wait_s": percentiles(waits),
        "timeline": timeline,
        "processes_reported": len(finals),
    }


def _sum(items: Any) -> dict[str, Any]:
    keys = ("joined", "playing", "requests", "errors", "stalls", "stall_s", "parts", "queued",
            "solved", "join_retries")  # fmt: skip
    total: dict[str, Any] = dict.fromkeys(keys, 0)
    for item in items:
        for k in keys:
            total[k] += item[k]
    return total


def first_live_space(url: str) -> str:
    import httpx

    with httpx.Client(base_url=url, timeout=10) as client:
        spaces = client.get("/api/spaces", params={"state": "live"}).json()["spaces"]
    if not spaces:
        raise SystemExit(f"no live Space at {url}: start one, or pass --serve")
    return str(spaces[0]["id"])


def print_table(summary: dict[str, Any]) -> None:
    age, wait = summary["part_age_s"], summary["blocking_wait_s"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1000 * v:.0f} ms"

    rows = [
        ("listeners (joined / asked)", f"{summary['joined']} / {summary['listeners']}"),
        ("requests per second", f"{summary['requests_per_s']:.0f}"),
        ("errors", f"{summary['errors']} {summary['error_kinds'] or ''}"),
        (
            "queued / PoW / join retries",
            f"{summary['waiting_room_answers']} / {summary['proofs_of_work']} / "
            f"{summary['join_retries']}",
        ),
        ("stalls (total stalled time)", f"{summary['stalls']} ({summary['stall_s']:.1f} s)"),
        ("parts received", f"{summary['parts']}"),
        ("part age at arrival p50 / p95", f"{ms(age['p50'])} / {ms(age['p95'])}"),
        ("blocking reload wait p50 / p95", f"{ms(wait['p50'])} / {ms(wait['p95'])}"),
    ]
    for label, value in rows:
        print(f"{label:<34}{value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="edge or origin base URL")
    parser.add_argument("--space", help="Space id (default: the first live one)")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0, help="after the ramp, s")
    parser.add_argument("--ramp", type=float, default=10.0, help="arrivals spread over, s")
    parser.add_argument("--procs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--serve", action="store_true", help="start tribune serve --demo first")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument(
        "--own-addresses",
        action="store_true",
        help="each listener from its own 127.16.0.0/12 address (a server on 127/8 only)",
    )
    ns = parser.parse_args(argv)
    if ns.listeners < 1 or ns.duration <= 0 or ns.ramp < 0 or ns.procs < 1:
        parser.error("need --listeners >= 1, --duration > 0, --ramp >= 0, --procs >= 1")
    opts = Options(ns.url, ns.space, ns.listeners, ns.duration, ns.ramp, ns.procs, ns.own_addresses)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if ns.serve:
        import tempfile

        from _util import tribune_process, venv_bin

        with (
            tempfile.TemporaryDirectory() as tmp,
            tribune_process(
                venv_bin("tribune"), cpu=ns.server_cpu, workdir=Path(tmp), demo=True
            ) as (base_url, _proc),
        ):
            opts.url = base_url
            opts.space = opts.space or first_live_space(base_url)
            summary = run(opts)
    else:
        opts.space = opts.space or first_live_space(opts.url)
        summary = run(opts)
    print_table(summary)
    (RESULTS / "listeners.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {RESULTS / 'listeners.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
