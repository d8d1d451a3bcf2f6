"""Latency benchmark: glass-to-glass LL-HLS vs plain HLS, speaker-to-speaker, and CPU.

How each figure is measured (all in one run, on this machine):

* Processes. The media servers run as subprocesses on free 127.0.0.1 ports pinned to CPU
  0 with ``taskset``; this script (every client: speakers, players) pins itself to CPU
  1, and so does the 13-speaker publisher process of the CPU figure.
* Speakers are aiortc peers that publish over WHIP. Their microphone
  (``_latency_rtc.MarkerTrack``) sends 20 ms frames paced in real time: silence with a
  marker (a 40 ms 1 kHz burst, 1 ms edges) every 2.5 s, starting on a frame boundary.
  The send time of a marker is ``time.time()`` when the frame holding its first sample
  is handed to aiortc (returned from the track's ``recv``, which aiortc's sender calls
  to encode it). Listening peers use a 1-packet aiortc receive buffer, as the server does.
* Markers are found by their energy at 1 kHz (a sliding one-cycle DFT; onset where it
  reaches half the burst's peak), to within about 0.1 ms on clean audio.

1. LL-HLS through the real server. ``tribune serve`` (temporary data dir, its own secret
   key). Over HTTP: a host signs up and creates a live Space; two speaker accounts are
   invited and accept; each gets an API token; speaker A publishes the marker track
   (``POST /api/spaces/{id}/whip``, Bearer token). ``--players`` listeners (8) each join
   as a guest (``POST /api/spaces/{id}/join`` -> ``urls.playlist``) and run a simulated
   hls.js in low-latency mode (``_latency_player.run_ll_player``): one playlist load,
   start at the live edge less PART-HOLD-BACK, then per part a blocking reload
   (``_HLS_msn``/``_HLS_part``) together with a request for the preload-hinted part,
   which the server holds until it exists. Players start staggered across one part
   duration, so their start phases sample what a crowd joining at random sees; each
   plays for ``--duration`` s (60). After the run each player's parts are decoded with
   PyAV (one decoder, init + parts), and played out on a model clock: playback starts
   when the part holding the start position arrives and runs in real time; a part that
   has not arrived when its first sample is due is a stall (counted when over 5 ms, and
   playback waits for it). Latency = when the marker plays - when it was sent; its
   EXT-X-PROGRAM-DATE-TIME position says when the mixer made it (the split
   ``send_to_program_s`` / ``program_to_playout_s`` in the JSON). p50/p95/max are over
   every marker every player heard; within one player they barely vary, so the spread
   is the spread of start phases.
2. LL-HLS beside plain HLS with 3 s segments, same program, same run. The benchmark's own
   media server (``_latency_pipeline.py``, pinned to CPU 0): a ``tribune.stage.Stage``
   whose ``on_program`` pushes each tick to an LL ``tribune.broadcast.Broadcast`` and to
   a plain one with 3.072 s segments, served by a small Starlette app on uvicorn; WHIP
   goes straight to ``stage.publish``. The plain stream is a second Broadcast when
   ``Broadcast`` takes ``parts_per_segment``/``low_latency``; otherwise it is derived
   from the LL stream (a segment = 9 consecutive parts, listed once its last part
   exists); the output says which. After a warm-up (4 plain segments), ``--players`` LL
   players and as many plain players (``run_plain_player``: start at the edge less
   HOLD-BACK, 3 target durations; reload every target duration, half after a reload
   with nothing new; staggered across one segment) listen for ``--duration`` s. The
   ratio is plain p50 / LL p50.
3. Speaker to speaker. Two aiortc speakers, both sendrecv; A sends a marker every 0.6 s,
   B sends silence and records what it receives with ``time.time()`` per frame. End to
   end = marker onset in B's mix-minus (receive time of its frame + its offset) - A's
   send time: once through the real server, once through the pipeline, each as
   ``--s2s-sessions`` (8) fresh pairs of connections sharing ``--s2s-seconds`` (16) of
   markers, because where A's packets fall between the mixer's 20 ms ticks is fixed for
   a connection and random across connections. In the pipeline the stage is
   instrumented for users named ``probe-*`` (bench-only subclasses swapped into
   ``tribune.stage.stage``), which stamps the marker at each point: RTP packet arrival
   at the server, the frame handed to the stage ("decoded"; the probe decodes a copy),
   pulled from A's jitter buffer into the mix, B's mix-minus tick encoded and pushed,
   and that packet handed to aiortc's sender. Server-added = handed - RTP arrival (what
   the server adds between its socket and B's RTP sender; the send itself, well under
   a millisecond, is not included).
4. CPU of a Space with 13 speakers (host, 2 co-hosts, 10 speakers: the stage's most) on
   the real server. CPU seconds of the server process are read from
   ``/proc/<pid>/stat`` (utime + stime, all threads) over ``--cpu-seconds`` (20) of
   steady state (3 s after all 13 connected) with 13 sendrecv speakers publishing quiet
   tones from ``_latency_publisher.py`` (its own process), in three windows: all 13
   talking; a conversation (2 talking at a time, turns every 3 s, the rest digital
   silence at 50 packets/s); the same conversation with DTX (silent speakers send a
   packet every 400 ms, as Chromium does for Tribune's ``usedtx=1`` answer). Baselines:
   ``--idle-seconds`` (6) for the same live Space before anyone publishes, and as long
   for the server with no live Space (the Space of items 1 and 3 ended). Each target
   figure is (window - idle Space) in % of one core; Spaces per media core = 100 % /
   (window - no Space), i.e. also counting the Space's own mixer and AAC encoder. No
   listeners fetch HLS meanwhile. Where the time goes (all-talking window): CPU per
   thread (``/proc/<pid>/task/*/stat``) grouped by the thread names ``py-spy dump``
   reports; and a 5 s ``py-spy record --nonblocking`` after the window, whose
   main-thread samples outside uvloop's C loop are grouped by component (approximate:
   py-spy samples Python frames, not the C time under them).

Targets (printed PASS/MISS; exit 0 either way, non-zero only if it could not run):
LL-HLS p95 <= 2.0 s (real server and pipeline), server-added speaker-to-speaker p95 <=
60 ms, 13-speaker Space <= 10 % of one core. Results: ``bench/results/latency.json`` and
``bench/results/latency.png``.

A default run takes about 4 minutes. Run: ``.venv/bin/python bench/latency.py``
(options: ``--duration``, ``--players``, ``--s2s-seconds``, ``--s2s-sessions``,
``--cpu-seconds``, ``--idle-seconds``, ``--server-cpu``, ``--client-cpu``, ``--plain``,
``--no-profile``, ``--tribune-bin``)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _latency_hls import match, percentiles
from _latency_player import Playout, analyse, run_ll_player, run_plain_player
from _latency_rtc import MarkerTrack, Peer
from _util import (
    BENCH_DIR,
    REPO_DIR,
    RESULTS_DIR,
    BenchError,
    ReadyCheck,
    cpu_model,
    free_port,
    pinned_process,
    require_taskset,
    server_env,
    tribune_process,
    venv_bin,
    version_of,
)

TARGET_LL_P95_S = 2.0
TARGET_S2S_SERVER_P95_S = 0.060
TARGET_CPU_SHARE = 0.10
MARKER_EVERY_S = 2.5
S2S_EVERY_S = 0.6
PART_S = 16 * 1024 / 48_000
PLAIN_SEGMENT_S = 9 * PART_S
SPEAKERS = 13  # host + 2 co-hosts + 10 speakers
CONVERSATION_TALKING = 2  # _latency_publisher.TALKING


@dataclass
class Options:
    duration: float
    players: int
    s2s_seconds: float
    s2s_sessions: int
    cpu_seconds: float
    idle_seconds: float
    server_cpu: int
    client_cpu: int
    plain: str
    profile: bool
    tribune_bin: Path


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="listening time, s")
    parser.add_argument("--players", type=int, default=8, help="players per HLS flavour")
    parser.add_argument(
        "--s2s-seconds", type=float, default=16.0, help="markers per s2s run, s (in all)"
    )
    parser.add_argument(
        "--s2s-sessions", type=int, default=8, help="s2s connections per run (tick phases)"
    )
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="CPU window, s")
    parser.add_argument("--idle-seconds", type=float, default=6.0, help="baselines, s")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--plain",
        choices=["auto", "broadcast", "derived"],
        default="auto",
        help="3 s plain HLS from a second Broadcast, or derived from the LL parts",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy sample")
    parser.add_argument("--tribune-bin", type=Path, default=venv_bin("tribune"))
    ns = parser.parse_args(argv)
    if ns.s2s_sessions < 1 or ns.s2s_seconds / max(ns.s2s_sessions, 1) < 2:
        parser.error("need --s2s-sessions >= 1 and >= 2 s of --s2s-seconds per session")
    if ns.duration < 10 or ns.players < 1 or ns.cpu_seconds < 2:
        parser.error(
            "need --duration >= 10, --players >= 1, --s2s-seconds >= 3, --cpu-seconds >= 2"
        )
    return Options(
        duration=ns.duration,
        players=ns.players,
        s2s_seconds=ns.s2s_seconds,
        s2s_sessions=ns.s2s_sessions,
        cpu_seconds=ns.cpu_seconds,
        idle_seconds=ns.idle_seconds,
        server_cpu=ns.server_cpu,
        client_cpu=ns.client_cpu,
        plain=ns.plain,
        profile=not ns.no_profile,
        tribune_bin=ns.tribune_bin,
    )


# --- processes ----------------------------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


@dataclass
class CpuSample:
    at: float
    total: float
    threads: dict[int, float]


def cpu_sample(pid: int) -> CpuSample:
    threads: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            threads[int(task.name)] = _stat_cpu(task / "stat")
    return CpuSample(time.monotonic(), _stat_cpu(Path(f"/proc/{pid}/stat")), threads)


@dataclass
class CpuWindow:
    seconds: float
    cpu_s: float
    #: CPU seconds per thread id over the window (threads born in it count from 0)
    threads: dict[int, float]

    @property
    def share(self) -> float:
        return self.cpu_s / self.seconds

    def by_role(self, pid: int, names: dict[int, str]) -> dict[str, float]:
        """Share of one core per thread role (roles from the thread names py-spy reads)."""
        roles: collections.Counter[str] = collections.Counter()
        for tid, cpu_s in self.threads.items():
            roles[thread_role(pid, tid, names.get(tid, ""))] += cpu_s / self.seconds
        return dict(roles.most_common())

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "cpu_s": self.cpu_s, "share_of_core": self.share}


def thread_role(pid: int, tid: int, name: str) -> str:
    if tid == pid or name == "MainThread":
        return "event loop (SRTP, RTP, mix, AAC, HTTP)"
    if name.startswith("audio-decoder"):
        return "aiortc decoder threads (Opus decode)"
    if name.startswith(("uvloop", "asyncio", "ThreadPoolExecutor")):
        return "executor threads (Opus encode)"
    if name.startswith("recording"):
        return "recording writer"
    return "other threads" if name else "unnamed threads"


async def measure_cpu(pid: int, seconds: float) -> CpuWindow:
    start = cpu_sample(pid)
    await asyncio.sleep(seconds)
    end = cpu_sample(pid)
    threads = {tid: cpu - start.threads.get(tid, 0.0) for tid, cpu in end.threads.items()}
    return CpuWindow(end.at - start.at, end.total - start.total, threads)


# --- set-up over HTTP ---------------------------------------------------------------------


class Account:
    def __init__(self, client: httpx.AsyncClient, user_id: str, token: str) -> None:
        self.client = client
        self.user_id = user_id
        self.token = token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def expect(resp: httpx.Response, status: int, what: str) -> httpx.Response:
    if resp.status_code != status:
        raise BenchError(f"{what} answered {resp.status_code}: {resp.text[:400]}")
    return resp


async def sign_up(base_url: str, name: str) -> Account:
    client = httpx.AsyncClient(base_url=base_url, timeout=20)
    resp = await expect(
        await client.post(
            "/api/accounts",
            json={"username": name, "password": secrets.token_urlsafe(18), "display_name": name},
        ),
        201,
        "POST /api/accounts",
    )
    body = resp.json()
    client.headers["X-CSRF-Token"] = body["csrf_token"]
    token = await expect(
        await client.post("/api/tokens", json={"name": "latency bench"}), 201, "POST /api/tokens"
    )
    return Account(client, body["user"]["id"], token.json()["token"])


async def create_space(host: Account, title: str) -> str:
    resp = await expect(
        await host.client.post("/api/spaces", json={"title": title, "allow_guests": True}),
        201,
        "POST /api/spaces",
    )
    space = resp.json()
    if space.get("state") != "live":
        raise BenchError(f"the benchmark Space is not live: {space}")
    return str(space["id"])


async def bring_on_stage(host: Account, space_id: str, person: Account, role: str) -> None:
    await expect(
        await host.client.post(
            f"/api/spaces/{space_id}/invitations", json={"user_id": person.user_id, "role": role}
        ),
        201,
        "POST invitations",
    )
    await expect(
        await person.client.post(f"/api/spaces/{space_id}/invitations/me/accept"),
        204,
        "POST invitations/me/accept",
    )


async def guest_playlist(base_url: str, space_id: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        resp = await expect(
            await client.post(f"/api/spaces/{space_id}/join"), 201, "POST /api/spaces/{id}/join"
        )
    path = resp.json().get("urls", {}).get("playlist")
    if not path:
        raise BenchError(f"the join response has no urls.playlist: {resp.text[:400]}")
    return base_url + path


# --- the measurements ---------------------------------------------------------------------


async def publish(
    client: httpx.AsyncClient,
    url: str,
    track: MarkerTrack,
    *,
    headers: dict[str, str] | None = None,
    sendrecv: bool = False,
) -> Peer:
    peer = Peer(track, sendrecv=sendrecv)
    try:
        await peer.publish(client, url, headers)
        await peer.connected()
    except BaseException:
        await peer.close()
        raise
    return peer


async def staggered(count: int, period: float, make: Any, *args: Any) -> list[Any]:
    """Start ``count`` players ``period / count`` apart; return their logs."""

    async def one(i: int) -> Any:
        await asyncio.sleep(i * period / count)
        return await make(*args, i)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def ll_real_server(base_url: str, space_id: str, a: Account, opts: Options) -> list[Playout]:
    track = MarkerTrack(MARKER_EVERY_S, first_after_s=0.5)
    async with httpx.AsyncClient(timeout=30) as client:
        peer = await publish(
            client, f"{base_url}/api/spaces/{space_id}/whip", track, headers=a.bearer
        )
        try:
            await asyncio.sleep(1.0)

            async def player(_: int) -> Any:
                url = await guest_playlist(base_url, space_id)
                return await run_ll_player(client, url, opts.duration)

            logs = await staggered(opts.players, PART_S, player)
            await asyncio.sleep(0.5)
        finally:
            await peer.close()
    return [analyse(log, track.sent) for log in logs]


async def wait_for_segments(client: httpx.AsyncClient, url: str, count: int) -> None:
    deadline = time.monotonic() + count * PLAIN_SEGMENT_S + 15
    while time.monotonic() < deadline:
        resp = await client.get(url)
        if resp.status_code == 200 and resp.text.count("#EXTINF") >= count:
            return
        await asyncio.sleep(0.25)
    raise BenchError(f"{url} did not list {count} segments in time")


async def ll_and_plain_pipeline(
    base_url: str, opts: Options
) -> tuple[list[Playout], list[Playout]]:
    track = MarkerTrack(MARKER_EVERY_S, first_after_s=0.5)
    async with httpx.AsyncClient(timeout=30) as client:
        peer = await publish(client, f"{base_url}/whip?user=speaker", track)
        try:
            print("  warming up until the plain playlist has 4 segments ...", flush=True)
            await wait_for_segments(client, f"{base_url}/plain/live.m3u8", 4)

            async def ll(i: int) -> Any:
                return await run_ll_player(client, f"{base_url}/ll/live.m3u8", opts.duration)

            async def plain(i: int) -> Any:
                return await run_plain_player(client, f"{base_url}/plain/live.m3u8", opts.duration)

            ll_logs, plain_logs = await asyncio.gather(
                staggered(opts.players, PART_S, ll),
                staggered(opts.players, PLAIN_SEGMENT_S, plain),
            )
            await asyncio.sleep(0.5)
        finally:
            await peer.close()
    return (
        [analyse(log, track.sent) for log in ll_logs],
        [analyse(log, track.sent) for log in plain_logs],
    )


@dataclass
class S2S:
    where: str
    end_to_end: list[float]
    sent: int
    components: dict[str, list[float]]


async def s2s_session(
    client: httpx.AsyncClient,
    url_a: str,
    url_b: str,
    headers_a: dict[str, str] | None,
    headers_b: dict[str, str] | None,
    seconds: float,
) -> tuple[list[float], list[float]]:
    """A sends markers for ``seconds``, B listens: (A's send times, onsets in B's audio)."""
    track_a = MarkerTrack(S2S_EVERY_S, first_after_s=0.5)
    b = await publish(client, url_b, MarkerTrack(None), headers=headers_b, sendrecv=True)
    a = None
    try:
        b.keep_audio()
        a = await publish(client, url_a, track_a, headers=headers_a, sendrecv=True)
        await asyncio.sleep(seconds)
        track_a.quiet()
        await asyncio.sleep(0.4)
    finally:
        if a is not None:
            await a.close()
        await b.close()
    return track_a.sent, b.heard.onset_times()


async def s2s_real_server(
    base_url: str, space_id: str, a: Account, b: Account, opts: Options
) -> S2S:
    url = f"{base_url}/api/spaces/{space_id}/whip"
    e2e: list[float] = []
    sent_total = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(opts.s2s_sessions):
            sent, heard = await s2s_session(
                client, url, url, a.bearer, b.bearer, opts.s2s_seconds / opts.s2s_sessions
            )
            sent_total += len(sent)
            e2e.extend(h - s for s, h in match(sent, heard, within=0.4))
    return S2S("real server", e2e, sent_total, {})


S2S_POINTS = ["rtp_arrival", "decoded", "pulled", "pushed", "handed", "heard"]


def s2s_components(
    sent: list[float], points: dict[str, list[float | None]], components: dict[str, list[float]]
) -> list[float]:
    """Add one session's per-marker segments to ``components``; return its end-to-end."""
    stamps = {
        name: dict(match(sent, [t for t in times if t is not None], within=0.4))
        for name, times in points.items()
    }
    e2e = []
    for s in sent:
        if s not in stamps["heard"]:
            continue
        e2e.append(stamps["heard"][s] - s)
        if not all(s in stamps[p] for p in S2S_POINTS):
            continue
        at = {p: stamps[p][s] for p in S2S_POINTS}
        for name, value in (
            ("client to server (encode, network)", at["rtp_arrival"] - s),
            ("server: RTP receive + decode", at["decoded"] - at["rtp_arrival"]),
            ("server: jitter buffer", at["pulled"] - at["decoded"]),
            ("server: mix to outbound push", at["pushed"] - at["pulled"]),
            ("server: outbound queue", at["handed"] - at["pushed"]),
            ("server to client (encode, network, decode)", at["heard"] - at["handed"]),
            ("server-added", at["handed"] - at["rtp_arrival"]),
            ("stage only (decoded -> handed)", at["handed"] - at["decoded"]),
        ):
            components.setdefault(name, []).append(value)
    return e2e


async def s2s_pipeline(base_url: str, opts: Options) -> S2S:
    e2e: list[float] = []
    components: dict[str, list[float]] = {}
    sent_total = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(opts.s2s_sessions):
            sender, receiver = f"probe-a{i}", f"probe-b{i}"
            sent, heard = await s2s_session(
                client,
                f"{base_url}/whip?user={sender}",
                f"{base_url}/whip?user={receiver}",
                None,
                None,
                opts.s2s_seconds / opts.s2s_sessions,
            )
            resp = await client.get(
                f"{base_url}/probe", params={"sender": sender, "receiver": receiver}
            )
            resp.raise_for_status()
            points: dict[str, list[float | None]] = {**resp.json(), "heard": list(heard)}
            sent_total += len(sent)
            e2e.extend(s2s_components(sent, points, components))
    return S2S("pipeline", e2e, sent_total, components)


# --- CPU ----------------------------------------------------------------------------------

_BUCKETS = [
    ("SRTP (pylibsrtp)", re.compile(r"pylibsrtp")),
    ("Opus encode", re.compile(r"^OpusEncoder\.")),
    ("RTP send (aiortc sender)", re.compile(r"rtcrtpsender\.py")),
    ("RTP receive (aiortc receiver)", re.compile(r"rtcrtpreceiver\.py|jitterbuffer\.py")),
    ("DTLS transport, RTP parsing", re.compile(r"rtcdtlstransport\.py|aiortc/rtp\.py")),
    ("ICE, UDP (aioice)", re.compile(r"aioice|rtcicetransport\.py")),
    # MixMinusTrack.recv costs ~7 us a frame timed alone; the loop mostly waits here for the
    # GIL that the Opus threads hold, which is where py-spy then finds it.
    ("stage: mix-minus out (mostly GIL waits)", re.compile(r"tribune/stage/tracks\.py")),
    ("stage: tick, mix, jitter", re.compile(r"tribune/stage/")),
    ("broadcast: AAC, packaging", re.compile(r"tribune/broadcast/")),
    ("HTTP", re.compile(r"uvicorn|starlette|fastapi|httptools|h11")),
    ("other aiortc", re.compile(r"aiortc")),
    ("asyncio (Python side)", re.compile(r"asyncio/|concurrent/")),
]
_IDLE_LEAF = re.compile(r"^Runner\.run \(|^Condition\.wait \(|^_worker \(|^Thread\._bootstrap")
_THREAD = re.compile(r"^thread \((\d+)\): (.*)$")


def summarise_profile(raw: str) -> dict[str, Any]:
    """The event-loop thread's Python-level samples by component (shares of them).

    py-spy samples every thread; samples of the main thread whose leaf is inside uvloop's
    C loop (``Runner.run``: waiting, or uvloop's own C code) are left out, and each other
    one goes to the component its leaf-most recognisable frame belongs to. Approximate:
    py-spy cannot tell a thread holding the GIL from one waiting for it, so the shares
    say where the loop's Python time goes, not how much CPU it is.
    """
    buckets: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = _THREAD.match(frames[0]) if frames else None
        if not count.isdigit() or thread is None or thread.group(2) != "MainThread":
            continue
        frames = frames[1:]
        if not frames or _IDLE_LEAF.search(frames[-1]):
            continue
        n = int(count)
        leaves[frames[-1]] += n
        for frame in reversed(frames):
            name = next((b for b, rx in _BUCKETS if rx.search(frame)), None)
            if name is not None:
                buckets[name] += n
                break
        else:
            buckets["other Python"] += n
    total = sum(buckets.values())
    return {
        "event_loop_samples": total,
        "event_loop_components": {k: v / total for k, v in buckets.most_common()},
        "event_loop_top_leaf_frames": [
            {"frame": k, "share": v / total} for k, v in leaves.most_common(10)
        ],
    }


def py_spy_bin() -> str | None:
    return shutil.which("py-spy", path=str(venv_bin("py-spy").parent)) or shutil.which("py-spy")


async def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from ``py-spy dump`` (tried a few times: a dump of
    a busy process now and then fails half-way)."""
    found = py_spy_bin()
    names: dict[int, str] = {}
    if found is None:
        return names
    for _ in range(3):
        proc = await asyncio.create_subprocess_exec(
            found, "dump", "--pid", str(pid), "--nonblocking",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        stdout, _ = await proc.communicate()
        for m in re.finditer(r'^Thread (\d+) \([^)]*\): "(.*)"$', stdout.decode(), re.M):
            names[int(m.group(1))] = m.group(2)
        if len(names) >= len(os.listdir(f"/proc/{pid}/task")):
            break
    return names


async def py_spy(pid: int, seconds: float, cpu: int, workdir: Path) -> dict[str, Any] | None:
    found = py_spy_bin()
    if found is None:
        print("  py-spy not installed: skipping the profile", flush=True)
        return None
    out = workdir / "py-spy.txt"
    rate = 200
    cmd = [
        require_taskset(), "-c", str(cpu), found, "record", "--pid", str(pid),
        "--duration", str(round(seconds)), "--rate", str(rate), "--format", "raw",
        "--output", str(out), "--nonblocking", "--threads",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    stdout, _ = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        print(f"  py-spy failed ({proc.returncode}): {stdout.decode()[-300:]}", flush=True)
        return None
    return summarise_profile(out.read_text())


@dataclass
class CpuResult:
    no_space: CpuWindow
    idle_space: CpuWindow
    #: all 13 talking at once (the worst case)
    loaded: CpuWindow
    #: 13 on stage, CONVERSATION_TALKING of them talking at a time, the rest silent
    conversation: CpuWindow
    #: the same with DTX: the silent ones send a packet every 400 ms (browsers, usedtx=1)
    conversation_dtx: CpuWindow
    publisher_cpu_s: float | None
    #: share of one core per thread role in the 13-speaker window
    roles: dict[str, float]
    profile: dict[str, Any] | None

    @property
    def speakers_share(self) -> float:
        return self.loaded.share - self.idle_space.share

    @property
    def space_share(self) -> float:
        return self.loaded.share - self.no_space.share

    @property
    def conversation_speakers_share(self) -> float:
        return self.conversation.share - self.idle_space.share

    @property
    def conversation_space_share(self) -> float:
        return self.conversation.share - self.no_space.share

    @property
    def dtx_speakers_share(self) -> float:
        return self.conversation_dtx.share - self.idle_space.share

    @property
    def dtx_space_share(self) -> float:
        return self.conversation_dtx.share - self.no_space.share

    def to_json(self) -> dict[str, Any]:
        return {
            "server_no_live_space": self.no_space.to_json(),
            "space_0_speakers": self.idle_space.to_json(),
            "space_13_speakers": self.loaded.to_json(),
            "space_13_speakers_conversation": self.conversation.to_json(),
            "conversation_talking_at_a_time": CONVERSATION_TALKING,
            "speakers_share_of_core": self.speakers_share,
            "space_share_of_core": self.space_share,
            "spaces_per_media_core": 1 / self.space_share if self.space_share > 0 else None,
            "conversation_speakers_share_of_core": self.conversation_speakers_share,
            "conversation_space_share_of_core": self.conversation_space_share,
            "conversation_spaces_per_media_core": (
                1 / self.conversation_space_share if self.conversation_space_share > 0 else None
            ),
            "space_13_speakers_conversation_dtx": self.conversation_dtx.to_json(),
            "dtx_speakers_share_of_core": self.dtx_speakers_share,
            "dtx_space_share_of_core": self.dtx_space_share,
            "dtx_spaces_per_media_core": (
                1 / self.dtx_space_share if self.dtx_space_share > 0 else None
            ),
            "publisher_process_cpu_s": self.publisher_cpu_s,
            "space_13_speakers_by_thread_share_of_core": self.roles,
            "profile": self.profile,
        }


async def cpu_phase(
    base_url: str, pid: int, host: Account, old_space: str, opts: Options, workdir: Path
) -> CpuResult:
    resp = await host.client.post(f"/api/spaces/{old_space}/end")
    await expect(resp, 200, "POST /api/spaces/{id}/end")
    suffix = secrets.token_hex(3)
    people = [await sign_up(base_url, f"cpu{i}_{suffix}") for i in range(SPEAKERS - 1)]
    await asyncio.sleep(1.0)
    print(f"  server with no live Space: {opts.idle_seconds:g} s ...", flush=True)
    no_space = await measure_cpu(pid, opts.idle_seconds)
    space_id = await create_space(host, "CPU benchmark")
    for i, person in enumerate(people):
        await bring_on_stage(host, space_id, person, "cohost" if i < 2 else "speaker")
    await asyncio.sleep(1.0)
    print(f"  live Space, 0 speakers: {opts.idle_seconds:g} s ...", flush=True)
    idle = await measure_cpu(pid, opts.idle_seconds)
    tokens = [host.token, *(p.token for p in people)]
    pub = await asyncio.create_subprocess_exec(
        require_taskset(), "-c", str(opts.client_cpu), sys.executable,
        str(BENCH_DIR / "_latency_publisher.py"), base_url, space_id,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=BENCH_DIR,
    )  # fmt: skip
    assert pub.stdin is not None
    assert pub.stdout is not None
    rest = b""
    try:
        pub.stdin.write(json.dumps(tokens).encode())
        await pub.stdin.drain()
        pub.stdin.close()
        line = await asyncio.wait_for(pub.stdout.readline(), 90)
        if not line.startswith(b"READY"):
            rest = line + await asyncio.wait_for(pub.stdout.read(), 30)
            raise BenchError(
                f"the publisher did not connect its {SPEAKERS} speakers:\n"
                f"{rest.decode(errors='replace')[-2000:]}"
            )
        await asyncio.sleep(3.0)
        print(
            f"  live Space, {SPEAKERS} speakers all talking: {opts.cpu_seconds:g} s ...",
            flush=True,
        )
        loaded = await measure_cpu(pid, opts.cpu_seconds)
        roles = loaded.by_role(pid, await thread_names(pid))
        profile = None
        if opts.profile:
            print("  py-spy: 5 s sample of the server ...", flush=True)
            profile = await py_spy(pid, 5, opts.client_cpu, workdir)
        pub.send_signal(signal.SIGUSR1)
        await asyncio.sleep(3.0)
        print(
            f"  live Space, {SPEAKERS} speakers, {CONVERSATION_TALKING} talking at a time: "
            f"{opts.cpu_seconds:g} s ...",
            flush=True,
        )
        conversation = await measure_cpu(pid, opts.cpu_seconds)
        pub.send_signal(signal.SIGUSR2)
        await asyncio.sleep(3.0)
        print(
            f"  live Space, {SPEAKERS} speakers, {CONVERSATION_TALKING} talking at a time, "
            f"DTX: {opts.cpu_seconds:g} s ...",
            flush=True,
        )
        conversation_dtx = await measure_cpu(pid, opts.cpu_seconds)
    finally:
        if pub.returncode is None:
            pub.terminate()
        try:
            rest += await asyncio.wait_for(pub.stdout.read(), 30)
        except TimeoutError:
            pub.kill()
        await pub.wait()
    match_cpu = re.search(rb"CPU ([\d.]+)", rest)
    match_packets = re.search(rb"PACKETS sent (\d+) held-by-dtx (\d+)", rest)
    if match_packets:
        sent, held = (int(x) for x in match_packets.groups())
        print(f"  speakers sent {sent} packets, DTX held back {held}", flush=True)
    await host.client.post(f"/api/spaces/{space_id}/end")
    return CpuResult(
        no_space,
        idle,
        loaded,
        conversation,
        conversation_dtx,
        float(match_cpu.group(1)) if match_cpu else None,
        roles,
        profile,
    )


# --- report -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def pooled(playouts: list[Playout]) -> dict[str, Any]:
    lat = [x for p in playouts for x in p.latencies()]
    ingest = [h.program - h.sent for p in playouts for h in p.heard]
    hls = [h.played - h.program for p in playouts for h in p.heard]
    return {
        "latency_s": percentiles(lat),
        "send_to_program_s": percentiles(ingest),
        "program_to_playout_s": percentiles(hls),
        "stalls": sum(p.stalls for p in playouts),
        "stall_s": sum(p.stall_s for p in playouts),
        "gaps": sum(p.gaps for p in playouts),
        "errors": [e for p in playouts for e in p.errors],
        "players": [
            {
                "markers": len(p.heard),
                "latency_p50_s": percentiles(p.latencies())["p50"],
                "stalls": p.stalls,
                "stall_s": p.stall_s,
                "startup_s": p.startup_s,
                "fetched": p.fetched,
                "playlist_loads": p.playlist_loads,
                "gaps": p.gaps,
                "errors": p.errors,
            }
            for p in playouts
        ],
        "all_latencies_s": lat,
    }


def fmt_s(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:.3f} s"


def print_report(results: dict[str, Any], opts: Options) -> dict[str, Any]:
    ll_pipe, plain = results["ll_pipeline"], results["plain_pipeline"]
    header = (
        f"{'measurement':<46}{'n':>5}{'p50':>11}{'p95':>11}{'max':>11}{'stalls':>8}"
        f"  {'target':<15}status"
    )
    print()
    print(header)
    print("-" * len(header))
    targets: dict[str, Any] = {}

    def row(label: str, stats: dict[str, Any], unit: str, stalls: str, target: str, status: str):
        print(
            f"{label:<46}{stats['n']:>5}{fmt_s(stats['p50'], unit):>11}"
            f"{fmt_s(stats['p95'], unit):>11}{fmt_s(stats['max'], unit):>11}{stalls:>8}"
            f"  {target:<15}{status}"
        )

    for key, label in (("ll_real", "LL-HLS, tribune serve"), ("ll_pipeline", "LL-HLS, pipeline")):
        r = results[key]
        p95 = r["latency_s"]["p95"]
        ok = p95 is not None and p95 <= TARGET_LL_P95_S
        targets[key] = {"target_p95_s": TARGET_LL_P95_S, "p95_s": p95, "verdict": verdict(ok)}
        row(
            label,
            r["latency_s"],
            "s",
            str(r["stalls"]),
            f"p95 <= {TARGET_LL_P95_S:g} s",
            verdict(ok),
        )
        row("  send -> program (WebRTC in, jitter, mix)", r["send_to_program_s"], "s", "", "", "")
        row("  program -> playout (HLS)", r["program_to_playout_s"], "s", "", "", "")
    plain_label = f"plain HLS 3 s segments, pipeline ({results['plain_mode']})"
    row(plain_label, plain["latency_s"], "s", str(plain["stalls"]), "-", "-")
    row("  program -> playout (HLS)", plain["program_to_playout_s"], "s", "", "", "")
    ratio = None
    if plain["latency_s"]["p50"] and ll_pipe["latency_s"]["p50"]:
        ratio = plain["latency_s"]["p50"] / ll_pipe["latency_s"]["p50"]
    results["plain_over_ll_p50"] = ratio
    print(f"{'plain / LL, p50, same pipeline and program':<46}{'':>5}{ratio or 0:>10.1f}x")
    s2s_real, s2s_pipe = results["s2s_real"], results["s2s_pipeline"]
    row(
        "speaker to speaker, end to end, tribune serve",
        s2s_real["end_to_end_s"],
        "ms",
        "",
        "-",
        "-",
    )
    row("speaker to speaker, end to end, pipeline", s2s_pipe["end_to_end_s"], "ms", "", "-", "-")
    added = s2s_pipe["components_s"].get("server-added", percentiles([]))
    ok = added["p95"] is not None and added["p95"] <= TARGET_S2S_SERVER_P95_S
    targets["s2s_server_added"] = {
        "target_p95_s": TARGET_S2S_SERVER_P95_S,
        "p95_s": added["p95"],
        "verdict": verdict(ok),
    }
    row("speaker to speaker, server-added, pipeline", added, "ms", "", "p95 <= 60 ms", verdict(ok))
    for name, stats in s2s_pipe["components_s"].items():
        if name != "server-added":
            row(f"  {name}", stats, "ms", "", "", "")
    cpu: CpuResult = results["cpu_raw"]
    print()
    print(f"{'CPU of the server process (% of one core)':<46}{'% core':>11}  {'target':<15}status")
    print(f"{'  no live Space':<46}{100 * cpu.no_space.share:>10.1f}%")
    print(f"{'  live Space, 0 speakers':<46}{100 * cpu.idle_space.share:>10.1f}%")
    talk = f"{CONVERSATION_TALKING} talking at a time"
    for key, label, window, speakers, space in (
        ("cpu_13_speakers_conversation_dtx", f"{talk}, DTX", cpu.conversation_dtx,
         cpu.dtx_speakers_share, cpu.dtx_space_share),
        ("cpu_13_speakers_conversation", talk, cpu.conversation,
         cpu.conversation_speakers_share, cpu.conversation_space_share),
        ("cpu_13_speakers_all_talking", "all talking at once", cpu.loaded,
         cpu.speakers_share, cpu.space_share),
    ):  # fmt: skip
        ok = speakers <= TARGET_CPU_SHARE
        targets[key] = {
            "target_share_of_core": TARGET_CPU_SHARE,
            "share_of_core": speakers,
            "verdict": verdict(ok),
        }
        print(f"{f'  live Space, {SPEAKERS} speakers, {label}':<46}{100 * window.share:>10.1f}%")
        print(
            f"{'    minus the idle Space':<46}{100 * speakers:>10.1f}%  {'<= 10 %':<15}"
            f"{verdict(ok)}"
        )
        per_core = 1 / space if space > 0 else float("inf")
        print(f"{'    whole Space (minus no Space)':<46}{100 * space:>10.1f}%")
        print(f"{'    such Spaces per media core':<46}{per_core:>11.1f}")
    print(f"  where the time goes, {SPEAKERS} all talking, by thread (% of one core):")
    for role, share in cpu.roles.items():
        if share < 0.001:
            continue
        print(f"    {role:<44}{100 * share:>10.1f}%")
    if cpu.profile and cpu.profile["event_loop_samples"]:
        print(
            f"  event-loop thread's Python time by py-spy "
            f"({cpu.profile['event_loop_samples']} samples, shares of them, approximate):"
        )
        for name, share in list(cpu.profile["event_loop_components"].items())[:8]:
            print(f"    {name:<44}{100 * share:>10.0f}%")
    if cpu.publisher_cpu_s is not None:
        print(f"  (the publisher process used {cpu.publisher_cpu_s:.1f} CPU s in all)")
    return targets


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (ax_bar, ax_cdf), (ax_s2s, ax_cpu) = axes
    systems = [
        ("LL-HLS\ntribune serve", report["ll_real"], "#2f6fb0"),
        ("LL-HLS\npipeline", report["ll_pipeline"], "#5dade2"),
        (f"plain HLS 3 s\npipeline ({report['plain_mode']})", report["plain_pipeline"], "#9aa5b1"),
    ]
    width = 0.26
    for j, stat in enumerate(("p50", "p95", "max")):
        values = [s[1]["latency_s"][stat] or 0.0 for s in systems]
        xs = [i + (j - 1) * width for i in range(len(systems))]
        bars = ax_bar.bar(xs, values, width, label=stat, color=["#5dade2", "#2f6fb0", "#1a3a5c"][j])
        ax_bar.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=7)
    ax_bar.axhline(TARGET_LL_P95_S, color="#c0392b", ls="--", lw=1.2, label="LL target p95 2 s")
    ax_bar.set_xticks(range(len(systems)), [s[0] for s in systems], fontsize=8)
    ax_bar.set_ylabel("glass-to-glass latency, s")
    ratio = report.get("plain_over_ll_p50")
    ax_bar.set_title(f"Speaker to listener (plain / LL p50 = {ratio or 0:.1f}x)")
    ax_bar.legend(fontsize=8, loc="upper left")

    for name, data, color in systems:
        lat = np.sort(np.asarray(data["all_latencies_s"]))
        if lat.size:
            ax_cdf.step(lat, np.arange(1, lat.size + 1) / lat.size, where="post", color=color,
                        label=name.replace("\n", ", "))  # fmt: skip
    ax_cdf.axvline(TARGET_LL_P95_S, color="#c0392b", ls="--", lw=1.2)
    ax_cdf.set_xscale("log")
    ax_cdf.set_xticks([1, 1.5, 2, 3, 5, 8, 12], ["1", "1.5", "2", "3", "5", "8", "12"])
    ax_cdf.minorticks_off()
    ax_cdf.set_xlabel("latency, s (log)")
    ax_cdf.set_ylabel("share of markers")
    ax_cdf.set_title("CDF over every marker every player heard")
    ax_cdf.legend(fontsize=8, loc="lower right")
    ax_cdf.grid(alpha=0.3)

    comps = report["s2s_pipeline"]["components_s"]
    rows = [
        ("end to end\ntribune serve", report["s2s_real"]["end_to_end_s"]),
        ("end to end\npipeline", report["s2s_pipeline"]["end_to_end_s"]),
        ("server-added\npipeline", comps.get("server-added", percentiles([]))),
        (
            "stage only\n(decoded->out)",
            comps.get("stage only (decoded -> handed)", percentiles([])),
        ),
    ]
    for j, stat in enumerate(("p50", "p95")):
        values = [1000 * (r[1][stat] or 0.0) for r in rows]
        xs = [i + (j - 0.5) * 0.38 for i in range(len(rows))]
        bars = ax_s2s.bar(xs, values, 0.38, label=stat, color=["#58d68d", "#1e8449"][j])
        ax_s2s.bar_label(bars, labels=[f"{v:.0f}" for v in values], padding=2, fontsize=7)
    ax_s2s.axhline(1000 * TARGET_S2S_SERVER_P95_S, color="#c0392b", ls="--", lw=1.2,
                   label="server-added target p95 60 ms")  # fmt: skip
    ax_s2s.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax_s2s.set_ylabel("ms")
    ax_s2s.set_title("Speaker to speaker (A's marker in B's mix-minus)")
    ax_s2s.legend(fontsize=8, loc="upper right")

    cpu = report["cpu"]
    labels = [
        "no live\nSpace",
        "Space,\n0 speakers",
        f"{SPEAKERS} spk,\n{CONVERSATION_TALKING} talking\nDTX",
        f"{SPEAKERS} spk,\n{CONVERSATION_TALKING} talking",
        f"{SPEAKERS} spk,\nall talking",
    ]
    values = [
        100 * cpu["server_no_live_space"]["share_of_core"],
        100 * cpu["space_0_speakers"]["share_of_core"],
        100 * cpu["space_13_speakers_conversation_dtx"]["share_of_core"],
        100 * cpu["space_13_speakers_conversation"]["share_of_core"],
        100 * cpu["space_13_speakers"]["share_of_core"],
    ]
    colors = ["#d5d8dc", "#9aa5b1", "#f8c471", "#f0b27a", "#e67e22"]
    bars = ax_cpu.bar(labels, values, color=colors)
    ax_cpu.bar_label(bars, labels=[f"{v:.1f}%" for v in values], padding=2, fontsize=8)
    ax_cpu.axhline(values[1] + 100 * TARGET_CPU_SHARE, color="#c0392b", ls="--", lw=1.2,
                   label="target: idle Space + 10 % of a core")  # fmt: skip
    ax_cpu.set_ylabel("server process CPU, % of one core")
    ax_cpu.set_title(
        f"{SPEAKERS} speakers: +{100 * cpu['dtx_speakers_share_of_core']:.1f}% (DTX) / "
        f"+{100 * cpu['conversation_speakers_share_of_core']:.1f}% "
        f"({CONVERSATION_TALKING} talking) / +{100 * cpu['speakers_share_of_core']:.1f}% "
        f"(all) of a core",
        fontsize=9,
    )
    ax_cpu.legend(fontsize=8, loc="upper left")
    roles = cpu.get("space_13_speakers_by_thread_share_of_core") or {}
    if roles:
        text = "13 all talking, by thread:\n" + "\n".join(
            f"{100 * v:5.1f}%  {k}" for k, v in list(roles.items())[:6] if v >= 0.001
        )
        ax_cpu.text(0.02, 0.80, text, transform=ax_cpu.transAxes, fontsize=7, va="top",
                    family="monospace", bbox={"facecolor": "white", "alpha": 0.8})  # fmt: skip
    ax_cpu.set_ylim(0, max(values) * 1.25 + 1)
    fig.suptitle(
        f"Tribune latency and CPU: servers on CPU {report['params']['server_cpu']}, clients "
        f"on CPU {report['params']['client_cpu']}; {report['params']['players']} players per "
        f"HLS flavour, {report['params']['duration_s']:g} s",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ensure_tribune(opts: Options) -> None:
    if opts.tribune_bin.exists():
        return
    if opts.tribune_bin != venv_bin("tribune"):
        raise BenchError(f"--tribune-bin {opts.tribune_bin} does not exist")
    print("tribune is not installed in this venv: pip install -e . ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not opts.tribune_bin.exists():
        raise BenchError(f"pip install -e . failed:\n{proc.stdout}\n{proc.stderr}")


async def run(opts: Options, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    suffix = secrets.token_hex(3)
    with tribune_process(opts.tribune_bin, cpu=opts.server_cpu, workdir=workdir) as (
        base_url,
        proc,
    ):
        host = await sign_up(base_url, f"host_{suffix}")
        a = await sign_up(base_url, f"speaker_a_{suffix}")
        b = await sign_up(base_url, f"speaker_b_{suffix}")
        try:
            space_id = await create_space(host, "Latency benchmark")
            await bring_on_stage(host, space_id, a, "speaker")
            await bring_on_stage(host, space_id, b, "speaker")
            print(
                f"1. LL-HLS through tribune serve: {opts.players} players x "
                f"{opts.duration:g} s ...",
                flush=True,
            )
            results["ll_real"] = await ll_real_server(base_url, space_id, a, opts)
            print(f"3. speaker to speaker through tribune serve: {opts.s2s_seconds:g} s ...")
            results["s2s_real"] = await s2s_real_server(base_url, space_id, a, b, opts)
            print(f"4. CPU of a {SPEAKERS}-speaker Space on tribune serve ...", flush=True)
            results["cpu"] = await cpu_phase(base_url, proc.pid, host, space_id, opts, workdir)
        finally:
            for account in (host, a, b):
                await account.client.aclose()

    port = free_port()
    cmd = [
        sys.executable, str(BENCH_DIR / "_latency_pipeline.py"), "--port", str(port),
        "--dir", str(workdir / "pipeline"), "--plain", opts.plain,
    ]  # fmt: skip
    with pinned_process(
        cmd,
        cpu=opts.server_cpu,
        port=port,
        ready=ReadyCheck("GET", "/health"),
        log_path=workdir / "pipeline.log",
        env=server_env({}),
        cwd=workdir,
    ) as (base_url, _):
        async with httpx.AsyncClient(timeout=10) as client:
            results["plain_mode"] = (await client.get(f"{base_url}/health")).json()["plain"]
        print(
            f"2. LL-HLS and plain HLS (3 s segments, {results['plain_mode']}) through the "
            f"pipeline: {opts.players} + {opts.players} players x {opts.duration:g} s ...",
            flush=True,
        )
        results["ll_pipeline"], results["plain_pipeline"] = await ll_and_plain_pipeline(
            base_url, opts
        )
        print(f"3. speaker to speaker through the instrumented pipeline: {opts.s2s_seconds:g} s")
        results["s2s_pipeline"] = await s2s_pipeline(base_url, opts)
    return results


def s2s_json(s2s: S2S) -> dict[str, Any]:
    return {
        "where": s2s.where,
        "markers_sent": s2s.sent,
        "markers_heard": len(s2s.end_to_end),
        "end_to_end_s": percentiles(s2s.end_to_end),
        "components_s": {k: percentiles(v) for k, v in s2s.components.items()},
        "all_end_to_end_s": s2s.end_to_end,
    }


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.monotonic()
    try:
        require_taskset()
        ensure_tribune(opts)
        if max(opts.server_cpu, opts.client_cpu) >= (os.cpu_count() or 1):
            raise BenchError(f"this machine has {os.cpu_count()} CPUs; pick others to pin to")
        os.sched_setaffinity(0, {opts.client_cpu})
        print(
            f"latency benchmark: servers on CPU {opts.server_cpu}, clients on CPU "
            f"{opts.client_cpu}; about {(2 * opts.duration + 115) / 60:.0f} min",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="tribune-latency-") as tmp:
            raw = asyncio.run(run(opts, Path(tmp)))
    except BenchError as exc:
        print(f"latency benchmark could not run: {exc}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {
        "benchmark": "latency",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "aiortc": version_of("aiortc"),
            "av": version_of("av"),
            "uvicorn": version_of("uvicorn"),
            "tribune": version_of("tribune"),
        },
        "params": {
            "duration_s": opts.duration,
            "players": opts.players,
            "s2s_seconds": opts.s2s_seconds,
            "s2s_sessions": opts.s2s_sessions,
            "cpu_seconds": opts.cpu_seconds,
            "idle_seconds": opts.idle_seconds,
            "server_cpu": opts.server_cpu,
            "client_cpu": opts.client_cpu,
            "marker_every_s": MARKER_EVERY_S,
            "s2s_marker_every_s": S2S_EVERY_S,
        },
        "plain_mode": raw["plain_mode"],
        "ll_real": pooled(raw["ll_real"]),
        "ll_pipeline": pooled(raw["ll_pipeline"]),
        "plain_pipeline": pooled(raw["plain_pipeline"]),
        "s2s_real": s2s_json(raw["s2s_real"]),
        "s2s_pipeline": s2s_json(raw["s2s_pipeline"]),
        "cpu": raw["cpu"].to_json(),
    }
    report["targets"] = print_report({**report, "cpu_raw": raw["cpu"]}, opts)
    if report["plain_mode"] == "derived":
        print(
            "note: plain HLS segments were derived from the LL stream (9 consecutive parts, "
            "listed once the last exists): this Broadcast cannot cut 3 s segments itself."
        )
    report["plain_over_ll_p50"] = (
        report["plain_pipeline"]["latency_s"]["p50"] / report["ll_pipeline"]["latency_s"]["p50"]
        if report["plain_pipeline"]["latency_s"]["p50"]
        and report["ll_pipeline"]["latency_s"]["p50"]
        else None
    )
    report["wall_time_s"] = time.monotonic() - began
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = RESULTS_DIR / "latency.png"
    out = RESULTS_DIR / "latency.json"
    plot(report, png)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nwrote {png.relative_to(REPO_DIR)} and {out.relative_to(REPO_DIR)} "
        f"({report['wall_time_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
