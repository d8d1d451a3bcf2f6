"""Fan-out: Tribune through one nginx edge, Icecast 2.4, and Tribune's Python origin.

    .venv/bin/python bench/fanout.py                    # about 6 minutes
    .venv/bin/python bench/fanout.py --max 3000 --duration 30

One run, one machine, the same program: white noise at -50 dBFS (so that the encoders
spend their bitrate as on real programme) with a 40 ms 1 kHz marker every 2.5 s, coded
as AAC-LC at 64 kbit/s (Tribune's broadcast; ffmpeg's ``aac`` encoder at 64k for
Icecast). Servers run pinned to ``--server-cpu``; every client (the simulated fleets,
the measuring players, the speaker, the Icecast source) to ``--client-cpu``.

Tribune: ``tribune serve`` (embedded default) with one nginx edge from ``tribune
edge-config`` with one worker (so "per core" is literal), the origin feeding the edge's
streams (``TRIBUNE_EDGES``). A speaker publishes the program over WHIP. The edge's
per-address limits are raised for the run (every simulated listener is 127.0.0.1).
Rows:

* ``edge stream`` at 100, 1,000 and ``--max`` listeners: what the web player uses. Each
  joins through the edge, then holds one ``/listen/`` response that the edge's nchan
  writes every part into (bench/_stream.py).
* ``edge LL-HLS`` at 1,000 and ``--max``: simulated hls.js players through the same edge
  (bench/listeners.py: join, a blocking playlist reload + the part for every part,
  heartbeats), what every other player (Safari, ffmpeg, VLC) uses.
* ``origin LL-HLS`` and ``origin stream`` at ``--max``: the Python origin serving
  listeners itself, no edge.
* ``icecast`` at ``--max``: Icecast 2.4 (Debian's icecast2, default burst and queue) fed
  by ffmpeg from a real-time PCM pipe (bench/_icecast.py), simulated stream listeners.
* ``edge LL-HLS lock`` (only with ``--only edge-lock``): the edge with ``--collapse
  lock`` (nginx's proxy_cache_lock instead of the njs hold, docs/edges.md).

How each figure is taken:

* **Server CPU-seconds per listener-minute**: utime + stime of the server's processes
  (every nginx process of the edge; the Icecast process; the Tribune process) from
  ``/proc/PID/stat`` over the steady window (from 2 s after the last arrival to 1 s before
  the fleet stops), divided by listener-minutes in the window (listeners playing x
  minutes, from the fleet's per-second count). For edge rows this is the edge alone; the
  origin behind it is reported apart, over its own baseline (the same Space with no
  listeners, measured first). For origin rows, the origin over that baseline.
  **Listeners per core** = 60 / that figure.
* **Glass-to-glass**: ``--players`` measuring players listen during every window (hls.js
  model: bench/_latency_player.py; stream: bench/_stream.py, modelled on the web
  player; Icecast: bench/_icecast.py, playing from the first byte); latency = when a
  marker plays on the player's model clock - when its first sample was handed to the
  sender (aiortc for Tribune, ffmpeg's stdin for Icecast).
* **Origin requests per part** (edge rows): from the edge's access log over the window:
  requests the edge sent to the origin for ``/hls/`` or ``/listen/`` (``upstream=`` set),
  plus the origin's pushes into the edge's streams (``POST /_tribune/publish/``), per
  part the origin made in the window (window / 0.341 s).
* Stalls and errors are the fleets' own (a part or frame arriving after its model
  playout time is a stall).

Targets (issue 5): >= 20,000 listeners per edge core at p95 <= 2 s; origin requests per
part <= edges (1 here) at every fleet size; Tribune's listeners per core >= Icecast's.
Writes ``bench/results/fanout.json`` and ``bench/results/fanout.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import listeners as fleet  # noqa: E402
from _icecast import MarkerFeed, glass_to_glass, run_fleet, running_icecast  # noqa: E402
from _latency_hls import percentiles  # noqa: E402
from _latency_player import Playout, analyse, run_ll_player  # noqa: E402
from _latency_rtc import MarkerTrack  # noqa: E402
from _stream import FragmentListener  # noqa: E402
from _stream import glass_to_glass as stream_g2g  # noqa: E402
from _util import (  # noqa: E402
    RESULTS_DIR,
    BenchError,
    ReadyCheck,
    cpu_model,
    ensure_wrk,
    free_port,
    pinned_process,
    require_taskset,
    server_env,
    tree_cpu,
    venv_bin,
    version_of,
)
from latency import create_space, guest_playlist, publish, sign_up  # noqa: E402

TARGET_PER_CORE = 20_000
TARGET_P95_S = 2.0
MARKER_EVERY_S = 2.5
#: the noise bed under the markers, for both (dBFS RMS)
NOISE_DBFS = -50.0
PART_S = 16 * 1024 / 48_000
_LOG_LINE = re.compile(r't=(?P<t>[\d.]+) "(?P<method>[A-Z]+) (?P<uri>\S+) .* upstream=(?P<up>\S+)')


# --- CPU accounting ------------------------------------------------------------------------


@dataclass
class Window:
    """CPU seconds of each watched process tree between two moments."""

    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    started: float = 0.0  # time.time() at the start, for the access log


def watch(pids: dict[str, int], start_at: float, end_at: float) -> Window:
    """Sleep until ``start_at`` (monotonic), sample, sleep until ``end_at``, sample."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    t0, wall0 = time.monotonic(), time.time()
    time.sleep(max(0.0, end_at - time.monotonic()))
    after = {name: tree_cpu(pid) for name, pid in pids.items()}
    return Window(time.monotonic() - t0, {n: after[n] - before[n] for n in pids}, wall0)


def idle(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU cores each process tree uses with nobody listening."""
    now = time.monotonic()
    w = watch(pids, now, now + seconds)
    return {n: c / w.seconds for n, c in w.cpu.items()}


# --- the servers ---------------------------------------------------------------------------


@dataclass
class Edge:
    url: str
    pid: int
    access_log: Path
    collapse: str


@dataclass
class Tribune:
    origin: str
    origin_pid: int
    edges: dict[str, Edge]


@contextlib.contextmanager
def running_tribune(workdir: Path, cpu: int, collapses: list[str]) -> Iterator[Tribune]:
    """``tribune serve`` and an nginx edge (1 worker) per collapse mode in front of it, all
    on ``cpu``. ``hold`` is the edge as ``tribune edge-config`` writes it; ``lock`` leaves
    the waiting to nginx's proxy_cache_lock (docs/edges.md)."""
    nginx = shutil.which("nginx")
    if nginx is None:
        raise BenchError("nginx is not installed (make bench installs nginx-light)")
    secret = secrets.token_hex(32)
    data = workdir / "tribune-data"
    data.mkdir(parents=True)
    ports = {collapse: free_port() for collapse in collapses}
    env = server_env({"TRIBUNE_DATA_DIR": str(data), "TRIBUNE_SECRET_KEY": secret})
    feeds = ",".join(f"http://127.0.0.1:{p}" for p in ports.values())
    port = free_port()
    with contextlib.ExitStack() as stack:
        origin, proc = stack.enter_context(
            pinned_process(
                [str(venv_bin("tribune")), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cpu=cpu,
                port=port,
                ready=ReadyCheck("GET", "/api/health"),
                log_path=workdir / "tribune.log",
                env=env | {"TRIBUNE_EDGES": feeds},
                cwd=workdir,
            )
        )
        edges = {}
        for collapse in collapses:
            home = workdir / f"edge-{collapse}"
            (home / "cache").mkdir(parents=True)
            for path in (workdir.parent, workdir, home, home / "cache"):
                path.chmod(0o755)  # nginx's workers run as nobody
            edge_port = ports[collapse]
            access = home / "access.log"
            unlimited = "1000000"
            subprocess.run(
                [
                    str(venv_bin("tribune")), "edge-config", "--out", str(home / "nginx.conf"),
                    "--origin", origin, "--listen", f"127.0.0.1:{edge_port}",
                    "--cache-dir", str(home / "cache"), "--pid", str(home / "nginx.pid"),
                    "--error-log", str(home / "error.log"), "--access-log", str(access),
                    "--workers", "1", "--worker-connections", "16000", "--collapse", collapse,
                    "--rate", unlimited, "--burst", unlimited,
                    "--api-rate", unlimited, "--api-burst", unlimited, "--stream-conns", "65535",
                    "--join-rate", unlimited, "--join-burst", unlimited,
                    "--token-rate", unlimited, "--token-burst", unlimited,
                    "--token-streams", "65535",
                ],
                env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            url, edge_proc = stack.enter_context(
                pinned_process(
                    [nginx, "-c", str(home / "nginx.conf"), "-g", "daemon off;"],
                    cpu=cpu,
                    port=edge_port,
                    ready=ReadyCheck("GET", "/edge-health"),
                    log_path=home / "nginx.log",
                    env=env,
                    cwd=home,
                )
            )
            edges[collapse] = Edge(url, edge_proc.pid, access, collapse)
        yield Tribune(origin, proc.pid, edges)


def origin_fetches(log: Path, since: float, until: float) -> dict[str, int]:
    """What passed between the origin and the edge between two wall-clock times: pulls
    (requests the edge sent to the origin for audio) by kind, and pushes (the origin's
    parts into the edge's streams)."""
    counts = {"part": 0, "playlist": 0, "other": 0, "push": 0}
    if not log.exists():
        return counts
    for line in log.read_text(errors="replace").splitlines():
        m = _LOG_LINE.search(line)
        if not m or not since <= float(m["t"]) < until:
            continue
        uri = m["uri"]
        if m["method"] == "POST" and uri.startswith("/_tribune/publish/"):
            counts["push"] += 1
            continue
        if m["up"] in ("-", "") or not uri.startswith(("/hls/", "/listen/")):
            continue
        name = uri.split("?", 1)[0].rsplit("/", 1)[-1]
        kind = (
            "part" if name.startswith("part")
            else "playlist" if name.endswith(".m3u8")
            else "other"
        )  # fmt: skip
        counts[kind] += 1
    return counts


# --- one fleet -----------------------------------------------------------------------------


@dataclass
class Step:
    system: str
    listeners: int
    fleet: dict[str, Any]
    window_s: float
    cpu_s: dict[str, float]
    playing: float
    #: the window in wall-clock time (time.time()), for the edge's access log
    window_wall: tuple[float, float] = (0.0, 0.0)
    origin_requests: dict[str, int] | None = None
    latency: dict[str, Any] | None = None

    def per_listener_minute(self, name: str, baseline: float = 0.0) -> float | None:
        used = self.cpu_s[name] - baseline * self.window_s
        minutes = self.playing * self.window_s / 60
        return None if minutes <= 0 else max(0.0, used) / minutes

    def json(self) -> dict[str, Any]:
        fleet_out = {k: v for k, v in self.fleet.items() if k != "timeline"}
        return {
            "system": self.system,
            "listeners": self.listeners,
            "playing_avg": self.playing,
            "window_s": self.window_s,
            "cpu_s": self.cpu_s,
            "origin_requests": self.origin_requests,
            "latency": self.latency,
            "fleet": fleet_out,
            "timeline": self.fleet.get("timeline", []),
        }


def playing_in(timeline: list[dict[str, Any]], t0: float, t1: float, key: str) -> float:
    values = [p[key] for p in timeline if t0 <= p["t"] <= t1]
    return sum(values) / len(values) if values else 0.0


def run_step(
    system: str,
    listeners: int,
    opts: Options,
    pids: dict[str, int],
    start_fleet: Callable[[], dict[str, Any]],
    measure: Callable[[float], Any] | None = None,
) -> tuple[Step, Any]:
    """Start a fleet (in a thread), watch the servers' CPU over its steady window, and run
    ``measure(seconds)`` (the measuring players) in this thread meanwhile."""
    out: dict[str, Any] = {}
    began = time.monotonic()
    thread = threading.Thread(target=lambda: out.update(start_fleet()), daemon=True)
    thread.start()
    start_at = began + 1.0 + opts.ramp + 2.0
    end_at = began + 1.0 + opts.ramp + opts.duration - 1.0
    window: dict[str, Window] = {}
    watcher = threading.Thread(
        target=lambda: window.update(w=watch(pids, start_at, end_at)), daemon=True
    )
    watcher.start()
    measured = None
    if measure is not None:
        time.sleep(max(0.0, start_at - time.monotonic()))
        measured = measure(end_at - time.monotonic())
    watcher.join()
    thread.join(timeout=opts.ramp + opts.duration + 120)
    w = window["w"]
    rel0, rel1 = start_at - began - 1.0, end_at - began - 1.0
    playing = playing_in(out.get("timeline", []), rel0, rel1, "playing")
    step = Step(system, listeners, out, w.seconds, w.cpu, playing)
    step.window_wall = (w.started, w.started + w.seconds)
    return step, measured


# --- the run -------------------------------------------------------------------------------


@dataclass
class Options:
    steps: list[int]
    duration: float
    ramp: float
    players: int
    procs: int
    server_cpu: int
    client_cpu: int
    systems: list[str]


def pin_self(cpu: int) -> None:
    """This process and the fleet processes it spawns run on ``cpu``."""
    os.sched_setaffinity(0, {cpu})


def ll_players(url_of: Callable[[], str], players: int, seconds: float, sent: list[float]) -> Any:
    async def go() -> list[Playout]:
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(i: int) -> Playout:
                await asyncio.sleep(i * PART_S / players)
                url = await asyncio.to_thread(url_of)
                log = await run_ll_player(client, url, seconds - 1.0)
                return analyse(log, sent)

            return list(await asyncio.gather(*(one(i) for i in range(players))))

    playouts = asyncio.run(go())
    lat = [x for p in playouts for x in p.latencies()]
    return {
        "latency_s": percentiles(lat),
        "markers": len(lat),
        "stalls": sum(p.stalls for p in playouts),
        "errors": [e for p in playouts for e in p.errors][:10],
    }


class Publisher:
    """The speaker: an aiortc marker track published over WHIP, on its own event loop."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.track = MarkerTrack(MARKER_EVERY_S, first_after_s=0.5, noise_dbfs=NOISE_DBFS)
        self.peer: Any = None
        self.space_id = ""
        self.accounts: list[Any] = []

    def start(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    async def _start(self) -> str:
        host = await sign_up(self.base_url, f"fanout_{secrets.token_hex(3)}")
        self.accounts.append(host)
        self.space_id = await create_space(host, "Fan-out benchmark")
        self.client = httpx.AsyncClient(timeout=30)
        self.peer = await publish(
            self.client,
            f"{self.base_url}/api/spaces/{self.space_id}/whip",
            self.track,
            headers=host.bearer,
        )
        return self.space_id

    def stop(self) -> None:
        async def close() -> None:
            if self.peer is not None:
                await self.peer.close()
            for a in self.accounts:
                await a.client.aclose()
            await self.client.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)


def tribune_phase(opts: Options, workdir: Path, report: dict[str, Any]) -> None:
    collapses = ["hold"] + (["lock"] if "edge-lock" in opts.systems else [])
    with running_tribune(workdir / "tribune", opts.server_cpu, collapses) as t:
        pub = Publisher(t.origin)
        space = pub.start()
        join = f"/api/spaces/{space}/join"
        try:
            time.sleep(3.0)  # a few parts in the window before anyone listens
            everything = {"origin": t.origin_pid} | {f"edge-{c}": e.pid for c, e in t.edges.items()}
            base = idle(everything, 6.0)
            report["tribune_idle_cores"] = base
            print(f"   idle: origin uses {base['origin']:.3f} cores (the Space, no listeners)")
            report["edge_ceiling"] = edge_ceiling(t.edges["hold"], space, opts)
            edge = t.edges["hold"]
            sent = pub.track.sent

            def stream_fleet(url: str, n: int) -> Callable[[], dict[str, Any]]:
                return lambda: run_fleet(
                    url, n, duration=opts.duration, ramp=opts.ramp, procs=opts.procs,
                    cpu=None, listener=FragmentListener, join=join, label="stream",
                )  # fmt: skip

            def stream_players(url: str) -> Callable[[float], Any]:
                return lambda s: asyncio.run(
                    stream_g2g(url, join, sent, players=opts.players, duration=s)
                )

            def hls_fleet(url: str, n: int) -> Callable[[], dict[str, Any]]:
                return lambda: fleet.run(_fleet_opts(url, space, n, opts), quiet=True)

            def hls_players(url: str) -> Callable[[float], Any]:
                return lambda s: ll_players(
                    lambda: guest_playlist_sync(url, space), opts.players, s, sent
                )

            plan: list[tuple[str, int, str, Any, Any]] = []
            if "stream" in opts.systems:
                plan += [
                    ("edge stream", n, "edge", stream_fleet(edge.url, n), stream_players(edge.url))
                    for n in opts.steps
                ]
            if "edge" in opts.systems:
                plan += [
                    ("edge LL-HLS", n, "edge", hls_fleet(edge.url, n), hls_players(edge.url))
                    for n in opts.steps[1:]
                ]
            if "edge-lock" in opts.systems:
                n, url = opts.steps[-1], t.edges["lock"].url
                plan.append(("edge LL-HLS lock", n, "lock", hls_fleet(url, n), hls_players(url)))
            if "origin" in opts.systems:
                n = opts.steps[-1]
                plan.append(
                    ("origin LL-HLS", n, "origin", hls_fleet(t.origin, n), hls_players(t.origin))
                )
                plan.append(
                    ("origin stream", n, "origin", stream_fleet(t.origin, n),
                     stream_players(t.origin))
                )  # fmt: skip
            for system, n, where, start_fleet, measure in plan:
                print(f"{system}: {n:,} listeners ...", flush=True)
                watched = {"origin": t.origin_pid}
                if where != "origin":
                    watched["edge"] = t.edges["lock" if where == "lock" else "hold"].pid
                step, lat = run_step(system, n, opts, watched, start_fleet, measure)
                if where != "origin":
                    since, until = step.window_wall
                    log = t.edges["lock" if where == "lock" else "hold"].access_log
                    step.origin_requests = origin_fetches(log, since, until)
                step.latency = lat
                report["steps"].append(step.json() | _derived(step, base))
                _say(report["steps"][-1])
        finally:
            pub.stop()


def guest_playlist_sync(base_url: str, space: str) -> str:
    return asyncio.run(guest_playlist(base_url, space))


def _fleet_opts(url: str, space: str, n: int, opts: Options) -> fleet.Options:
    return fleet.Options(url, space, n, opts.duration, opts.ramp, opts.procs)


def _derived(step: Step, base: dict[str, float]) -> dict[str, Any]:
    name = "icecast" if step.system == "icecast" else "edge" if "edge" in step.cpu_s else "origin"
    per_min = step.per_listener_minute(name, base.get(name, 0.0) if name == "origin" else 0.0)
    out: dict[str, Any] = {
        "server": name,
        "cpu_s_per_listener_minute": per_min,
        "listeners_per_core": (60 / per_min) if per_min else None,
    }
    if name == "edge":
        out["origin_cpu_s_per_listener_minute"] = step.per_listener_minute(
            "origin", base.get("origin", 0.0)
        )
        parts = step.window_s / PART_S
        reqs = step.origin_requests or {}
        out["origin_requests_per_part"] = {k: v / parts for k, v in reqs.items()}
        out["origin_requests_per_part_all"] = sum(reqs.values()) / parts
    return out


def _say(row: dict[str, Any]) -> None:
    f = row["fleet"]
    per = row["listeners_per_core"]
    lat = (row.get("latency") or {}).get("latency_s") or {}
    rps = f.get("requests_per_s")
    msg = (
        f"   {row['playing_avg']:.0f} playing"
        + ("" if rps is None else f", {rps:.0f} req/s")
        + f", errors {f['errors']}, stalls {f['stalls']}; {row['server']} "
        f"{row['cpu_s'][row['server']]:.2f} CPU-s in {row['window_s']:.1f} s -> "
        + (f"{per:,.0f} listeners/core" if per else "(no listeners playing)")
    )
    if "origin_requests_per_part_all" in row:
        msg += f"; origin requests/part {row['origin_requests_per_part_all']:.2f}"
    if lat.get("p50") is not None:
        msg += f"; glass-to-glass p50 {lat['p50']:.2f} s p95 {lat['p95']:.2f} s"
    print(msg, flush=True)


def wrk_cost(edge: Edge, url: str, opts: Options, wrk: str) -> dict[str, Any] | None:
    """wrk (200 connections, 5 s, on the client CPU) on one ``url`` the edge has cached:
    requests/s, and microseconds of the edge's CPU per request."""
    before = tree_cpu(edge.pid)
    proc = subprocess.run(
        [require_taskset(), "-c", str(opts.client_cpu), wrk, "-t1", "-c200", "-d5s", url],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    used = tree_cpu(edge.pid) - before
    m = re.search(r"(\d+) requests in ([\d.]+)s", proc.stdout)
    if not m or not used:
        print(f"   (wrk gave no result: {proc.stdout[-300:]} {proc.stderr[-300:]})")
        return None
    requests = int(m[1])
    return {
        "requests": requests,
        "requests_per_s": requests / float(m[2]),
        "edge_cpu_s": used,
        "us_per_request": 1e6 * used / requests,
        "requests_per_core_second": requests / used,
    }


def edge_ceiling(t: Edge, space: str, opts: Options) -> dict[str, Any] | None:
    """What one request costs the edge's core: a cached LL-HLS part (njs checks the token,
    then the cache answers), and the room state a web page polls every second (nginx's
    cache alone)."""
    try:
        wrk = ensure_wrk()
    except BenchError as exc:
        print(f"   (no edge ceiling: {exc})")
        return None
    playlist = guest_playlist_sync(t.url, space)
    with httpx.Client(timeout=10) as client:
        text = client.get(playlist).text
        uri = [line for line in text.splitlines() if line.startswith("#EXT-X-PART:")][-1]
        part = uri.split('URI="', 1)[1].split('"', 1)[0]
        url = playlist.rsplit("/", 1)[0] + "/" + part
        client.get(url)  # now it is cached
        state = f"{t.url}/api/spaces/{space}/state"
        client.get(state)
    out = wrk_cost(t, url, opts, wrk)
    if out is None:
        return None
    out["state"] = wrk_cost(t, state, opts, wrk)
    print(
        f"   edge, per request (wrk, 200 connections): a cached part "
        f"{out['us_per_request']:.1f} us ({out['requests_per_s']:,.0f} req/s)"
        + (
            f"; the room state {out['state']['us_per_request']:.1f} us "
            f"({out['state']['requests_per_s']:,.0f} req/s)"
            if out["state"]
            else ""
        )
    )
    return out


def icecast_phase(opts: Options, workdir: Path, report: dict[str, Any]) -> None:
    n = opts.steps[-1]
    home = workdir / "icecast"
    home.mkdir()
    with running_icecast(home, cpu=opts.server_cpu, max_listeners=n + opts.players) as ice:
        feed = MarkerFeed(ice, cpu=opts.client_cpu, every_s=MARKER_EVERY_S, noise_dbfs=NOISE_DBFS)
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        asyncio.run_coroutine_threadsafe(feed.start(), loop).result(30)
        try:
            time.sleep(3.0)
            base = idle({"icecast": ice.pid}, 4.0)
            print(f"icecast: {n:,} listeners ...", flush=True)
            step, lat = run_step(
                "icecast", n, opts, {"icecast": ice.pid},
                lambda: run_fleet(ice.url, n, duration=opts.duration, ramp=opts.ramp,
                                  procs=opts.procs, cpu=None),
                lambda s: asyncio.run(glass_to_glass(ice.url, feed.sent, players=opts.players,
                                                     duration=s)),
            )  # fmt: skip
            step.latency = lat
            report["icecast_idle_cores"] = base
            # a source that fell behind real time would make Icecast look late or stall
            report["icecast_feed"] = {"frames": feed.frames_written, "late": feed.late_frames}
            report["steps"].append(step.json() | _derived(step, {}))
            _say(report["steps"][-1])
        finally:
            asyncio.run_coroutine_threadsafe(feed.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)


# --- report --------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def print_table(report: dict[str, Any]) -> None:
    rows = report["steps"]
    print()
    header = (
        f"{'system':<18}{'listeners':>10}{'playing':>9}{'req/s':>8}{'err':>5}{'stalls':>7}"
        f"{'CPU-s/listener-min':>20}{'listeners/core':>16}{'g2g p50':>9}{'g2g p95':>9}"
        f"{'origin req/part':>17}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        f = r["fleet"]
        lat = (r.get("latency") or {}).get("latency_s") or {}
        per = r["cpu_s_per_listener_minute"]
        orp = r.get("origin_requests_per_part_all")
        rps = f.get("requests_per_s")
        cells = [
            "-" if per is None else f"{per:.5f}",
            f"{r['listeners_per_core']:,.0f}" if r["listeners_per_core"] else "-",
            "-" if lat.get("p50") is None else f"{lat['p50']:.2f} s",
            "-" if lat.get("p95") is None else f"{lat['p95']:.2f} s",
            "-" if orp is None else f"{orp:.2f}",
            "-" if rps is None else f"{rps:.0f}",
        ]
        print(
            f"{r['system']:<18}{r['listeners']:>10,}{r['playing_avg']:>9.0f}"
            f"{cells[5]:>8}{f['errors']:>5}{f['stalls']:>7}"
            f"{cells[0]:>20}{cells[1]:>16}{cells[2]:>9}{cells[3]:>9}{cells[4]:>17}"
        )
    print(
        "\n  req/s: the fleet's HTTP requests per second (a stream or Icecast listener makes "
        "one per session);\n  origin req/part: origin -> edge transfers per part made "
        "(pulls for /hls/ and /listen/ + pushes into the edge's streams)."
    )
    print()
    s = report["summary"]
    for label, value, ok in s["targets"]:
        print(f"  {verdict(ok):<5} {label}: {value}")
    ceiling = report.get("edge_ceiling")
    if s.get("web_listener"):
        print(
            "\n  A web listener also polls the room state once a second (answered from the "
            f"edge's cache): stream + state = {s['web_listener']['listeners_per_core']:,.0f} "
            "listeners per edge core."
        )
    if ceiling and s.get("edge_requests_per_listener_s"):
        print(
            f"\n  LL-HLS at the edge, one cached part with wrk (200 connections): "
            f"{ceiling['requests_per_s']:,.0f} req/s, {ceiling['us_per_request']:.1f} us of edge "
            f"CPU per request; at {s['edge_requests_per_listener_s']:.1f} requests/s per "
            f"LL-HLS listener that is {s['edge_ceiling_listeners_per_core']:,.0f} listeners "
            "per core at most"
        )


def _latency(row: dict[str, Any] | None, stat: str) -> float | None:
    if row is None:
        return None
    value = ((row.get("latency") or {}).get("latency_s") or {}).get(stat)
    return None if value is None else float(value)


def summarise(report: dict[str, Any]) -> None:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in report["steps"]:
        by.setdefault(r["system"], []).append(r)
    stream = by.get("edge stream", [])
    hls_rows = by.get("edge LL-HLS", [])
    hls = hls_rows[-1] if hls_rows else None
    ice = (by.get("icecast") or [None])[-1]
    biggest = stream[-1] if stream else None
    targets: list[tuple[str, str, bool | None]] = []
    if biggest:
        lpc = biggest["listeners_per_core"] or 0
        p95 = _latency(biggest, "p95")
        targets.append((
            f">= {TARGET_PER_CORE:,} listeners per edge core at p95 <= {TARGET_P95_S:g} s "
            "(the stream)",
            f"{lpc:,.0f} per core at {biggest['listeners']:,} listeners, p95 "
            f"{'-' if p95 is None else f'{p95:.2f} s'}",
            lpc >= TARGET_PER_CORE and p95 is not None and p95 <= TARGET_P95_S,
        ))  # fmt: skip
    if hls:
        lpc_h = hls["listeners_per_core"] or 0
        p95_h = _latency(hls, "p95")
        targets.append((
            "... and for LL-HLS through the edge (hls.js, Safari, ffmpeg)",
            f"{lpc_h:,.0f} per core at {hls['listeners']:,} listeners, p95 "
            f"{'-' if p95_h is None else f'{p95_h:.2f} s'}",
            lpc_h >= TARGET_PER_CORE and p95_h is not None and p95_h <= TARGET_P95_S,
        ))  # fmt: skip
    edge_rows = stream + hls_rows
    if edge_rows:

        def per_object(r: dict[str, Any]) -> float:
            # each part reaches the edge once per path: pushed into its stream, fetched
            # into its HLS cache, and listed by one blocking playlist fetch
            o = r["origin_requests_per_part"]
            return float(max(o["push"], o["part"], o["playlist"]))

        targets.append((
            "origin requests per part <= number of edges (1) at every fleet size",
            ", ".join(f"{r['system']} {r['listeners']:,}: "
                      f"{r['origin_requests_per_part']['push']:.2f} pushed + "
                      f"{r['origin_requests_per_part']['part']:.2f} part + "
                      f"{r['origin_requests_per_part']['playlist']:.2f} playlist fetches"
                      for r in edge_rows),
            all(per_object(r) <= 1.05 for r in edge_rows),
        ))  # fmt: skip
    if biggest and ice and ice["listeners_per_core"]:
        lpc = biggest["listeners_per_core"] or 0
        targets.append((
            "Tribune's listeners per core >= Icecast's",
            f"{lpc:,.0f} (stream through the edge) vs {ice['listeners_per_core']:,.0f}",
            lpc >= ice["listeners_per_core"],
        ))  # fmt: skip
    per_listener = hls["fleet"]["requests_per_s"] / max(1.0, hls["playing_avg"]) if hls else 0.0
    ceiling = report.get("edge_ceiling") or {}
    state = ceiling.get("state") or {}
    web = None
    if biggest and biggest["cpu_s_per_listener_minute"] and state.get("us_per_request"):
        # a web page also polls the room state once a second (the edge's cache answers)
        per_min = biggest["cpu_s_per_listener_minute"] + 60 * state["us_per_request"] / 1e6
        web = {"cpu_s_per_listener_minute": per_min, "listeners_per_core": 60 / per_min}
    report["summary"] = {
        "web_listener": web,
        "targets": targets,
        "edge_requests_per_listener_s": per_listener,
        "edge_ceiling_listeners_per_core": (
            ceiling["requests_per_core_second"] / per_listener
            if per_listener and ceiling.get("requests_per_core_second")
            else 0
        ),
    }


COLORS = {
    "edge stream": "#1a5d9c",
    "edge LL-HLS": "#5dade2",
    "edge LL-HLS lock": "#a9cce3",
    "icecast": "#e67e22",
    "origin LL-HLS": "#9aa5b1",
    "origin stream": "#5d6d7e",
}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["steps"]
    fig, (ax_core, ax_lat, ax_orig) = plt.subplots(1, 3, figsize=(17, 5.4))
    biggest: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["system"] not in biggest or r["listeners"] >= biggest[r["system"]]["listeners"]:
            biggest[r["system"]] = r
    names = list(biggest)
    labels = [n.replace(" ", "\n", 1) for n in names]
    values = [biggest[n]["listeners_per_core"] or 0 for n in names]
    bars = ax_core.bar(labels, values, color=[COLORS.get(n, "#888") for n in names])
    ax_core.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax_core.axhline(TARGET_PER_CORE, color="#c0392b", ls="--", lw=1.2, label="target 20,000 (edge)")
    ax_core.set_yscale("log")
    ax_core.set_ylabel("listeners per core (server CPU, log scale)")
    ax_core.set_title(f"Listeners per core at {max(r['listeners'] for r in rows):,} listeners")
    ax_core.legend(fontsize=8)
    for i, n in enumerate(names):
        for j, stat in enumerate(("p50", "p95")):
            v = _latency(biggest[n], stat)
            if v is None:
                continue
            b = ax_lat.bar(
                i + (j - 0.5) * 0.38, v, 0.38, color=COLORS.get(n, "#888"), alpha=0.55 + 0.45 * j
            )
            ax_lat.bar_label(b, labels=[f"{v:.2f}"], fontsize=7)
    ax_lat.set_xticks(range(len(names)), labels)
    ax_lat.axhline(TARGET_P95_S, color="#c0392b", ls="--", lw=1.2, label="target p95 2 s")
    ax_lat.set_ylabel("glass-to-glass latency, s (p50 light, p95 dark)")
    ax_lat.set_title("Glass-to-glass under the same load")
    ax_lat.legend(fontsize=8)
    stream = [r for r in rows if r["system"] == "edge stream"]
    if stream:
        xs = [r["listeners"] for r in stream]
        per = [r["origin_requests_per_part"] for r in stream]
        pulls = [o["part"] + o["playlist"] + o["other"] for o in per]
        color = COLORS["edge stream"]
        ax_orig.plot(xs, [o["push"] for o in per], "o-", color=color, label="stream: pushed")
        ax_orig.plot(xs, pulls, "s--", color=color, label="stream: pulled")
    labelled: set[str] = set()
    for r in rows:
        if r["system"].startswith("edge LL-HLS"):
            o = r["origin_requests_per_part"]
            first = r["system"] not in labelled
            labelled.add(r["system"])
            ax_orig.plot([r["listeners"]], [o["part"]], "^", color=COLORS.get(r["system"]),
                         label=f"{r['system']}: part fetches" if first else None)  # fmt: skip
            ax_orig.plot([r["listeners"]], [o["playlist"]], "v", color=COLORS.get(r["system"]),
                         label=f"{r['system']}: playlist fetches" if first else None)  # fmt: skip
    ax_orig.axhline(1.0, color="#c0392b", ls="--", lw=1.2, label="1 per edge")
    ax_orig.set_xscale("log")
    ax_orig.set_ylim(0, 2.5)
    ax_orig.set_xlabel("listeners on the edge")
    ax_orig.set_ylabel("origin <-> edge transfers per part made")
    ax_orig.set_title("Origin requests per part (one edge)")
    ax_orig.legend(fontsize=7)
    fig.suptitle(
        f"Fan-out: Tribune through one nginx edge vs Icecast {report['versions']['icecast']} vs "
        f"the Python origin ({report['machine']['cpu']}, {report['machine']['cores']} cores)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max", type=int, default=2000, help="the largest fleet")
    parser.add_argument("--duration", type=float, default=25.0, help="per fleet after ramp, s")
    parser.add_argument("--ramp", type=float, default=5.0, help="arrivals spread over, s")
    parser.add_argument("--players", type=int, default=4, help="measuring players")
    parser.add_argument("--procs", type=int, default=1, help="fleet processes")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--only", choices=["stream", "edge", "edge-lock", "icecast", "origin"],
        action="append",
        help="run only these systems (repeat)",
    )  # fmt: skip
    ns = parser.parse_args(argv)
    if ns.max < 1000 or ns.duration < 8 or ns.players < 1:
        parser.error("need --max >= 1000, --duration >= 8, --players >= 1")
    return Options(
        steps=[100, 1000, ns.max] if ns.max > 1000 else [100, 1000],
        duration=ns.duration,
        ramp=ns.ramp,
        players=ns.players,
        procs=ns.procs,
        server_cpu=ns.server_cpu,
        client_cpu=ns.client_cpu,
        systems=ns.only or ["stream", "edge", "icecast", "origin"],
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.monotonic()
    require_taskset()
    pin_self(opts.client_cpu)
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()
        },
        "versions": {"tribune": version_of("tribune"), "nginx": _nginx_version(),
                     "icecast": _icecast_version(), "aiortc": version_of("aiortc")},
        "options": {k: v for k, v in vars(opts).items()},
        "steps": [],
    }  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="tribune-fanout-") as tmp:
            work = Path(tmp)
            if {"stream", "edge", "edge-lock", "origin"} & set(opts.systems):
                tribune_phase(opts, work, report)
            if "icecast" in opts.systems:
                icecast_phase(opts, work, report)
    except BenchError as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return 2
    summarise(report)
    print_table(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "fanout.json").write_text(json.dumps(report, indent=2, default=str))
    plot(report, RESULTS_DIR / "fanout.png")
    print(
        f"\nwrote {RESULTS_DIR / 'fanout.json'} and fanout.png in {time.monotonic() - began:.0f} s"
    )
    return 0


def _nginx_version() -> str:
    proc = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return proc.stderr.strip().split("/")[-1] if proc.returncode == 0 else "unknown"


def _icecast_version() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "icecast2"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
