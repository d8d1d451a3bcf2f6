"""Icecast 2.4 as the baseline of bench/fanout.py: the server, a live source, listeners.

How each Icecast number is measured:

* Server. ``running_icecast`` writes an ``icecast.xml`` and runs Debian's ``icecast2``
  (2.4.4) pinned to one CPU with ``taskset``, on a free 127.0.0.1 port, as ``nobody``
  (Icecast will not run as root). ``<clients>`` is the number of listeners plus 100. The
  buffering settings that decide an Icecast listener's latency are left at Icecast's
  compiled-in defaults (``cfgfile.c``; Debian's sample config sets the same values):
  burst-on-connect on with ``<burst-size>`` 64 KiB (65536 bytes), i.e. a new listener is
  first sent up to the newest 64 KiB the source sent (about 7.7 s of this 64 kbit/s
  stream, 8.4 kB/s with ADTS headers; less if the source has not been on that long), then
  the stream as it comes; ``<queue-size>`` 500 KiB (a listener that falls that far behind
  is dropped). Icecast 2.4 has no AAC parser: it logs ``audio/aac`` as an unsupported type
  and relays it with its generic (MP3 without metadata) handler, which queues the source's
  bytes in 1400-byte blocks (``REFBUF_SIZE`` in ``format_mp3.c``), so listeners get the
  stream in 1400-byte pieces, one per ~167 ms at this bitrate, and the burst is a whole
  number of blocks. The server's CPU time is utime + stime of its process (all threads)
  from ``/proc/<pid>/stat``.
* Source. ``MarkerFeed`` runs ``ffmpeg`` (pinned to one CPU) as an operator would feed
  Icecast live: raw PCM on stdin (s16le, mono, 48 kHz), encoded by ffmpeg's native ``aac``
  encoder (AAC-LC, 64 kbit/s, as Tribune's broadcast), muxed as ADTS and sent with
  ffmpeg's ``icecast://`` protocol (HTTP PUT, ``audio/aac``), each ADTS frame sent as soon
  as it is made (``-flush_packets 1``; ffmpeg 5.1 already does so by default on this
  protocol, the flag makes sure of it; ``-fflags +nobuffer`` on the input); a marker
  reaches Icecast about 50 ms after it was written (encoder delay and look-ahead, pipe,
  socket; see ``pair_offset_s``). A thread of this process writes 20 ms frames to ffmpeg's
  stdin, paced in real time against the monotonic clock: a noise bed at -60 dBFS (white
  noise; inaudible, but it makes the encoder spend its 64 kbit/s as on real programme: on
  digital silence ffmpeg's AAC encoder makes ~1.2 kB/s, and Icecast's 64 KiB burst would
  then hold almost a minute of audio) plus the 40 ms 1 kHz marker every 2.5 s, each
  starting on a frame boundary. A marker's send time is ``time.time()`` when the frame
  holding its first sample has been written to ffmpeg's stdin (the counterpart of the
  WebRTC marker track's hand-over to aiortc).
* Listener fleet (``run_fleet``). Simulated listeners spread over spawned processes
  (asyncio + uvloop each, optionally pinned to one CPU), arriving evenly over the ramp.
  Each makes one ``GET /live.aac`` (HTTP/1.1, no ICY metadata, as a browser's audio
  element) and reads the body continuously, counting whole ADTS frames (1024 samples, 21.3
  ms each) as their last byte arrives. It plays them on a model clock: playback starts
  when the first whole frame arrives (t0) and runs in real time; frame k is due at t0 +
  k·1024/48000 + the stall so far; a frame arriving more than 5 ms (``STALL_TOLERANCE_S``)
  after it is due is a stall, and playback waits for it. A listener whose audio has run
  out when the run ends counts that as a stall too. Reported: listeners connected (HTTP
  200), playing at the end (connected and not run dry), errors by kind (connect failures,
  non-200 statuses, the server closing or resetting the connection, no response), stalls
  and stalled seconds, startup (from the listener's arrival, when it starts connecting, to
  its first whole frame), bytes received in the first second after the response header
  (the burst) and bytes/s per listener after it, and a per-second timeline of listeners
  playing (connected, started, not run dry at that second).
* Glass to glass (``glass_to_glass``). A few listeners that record every read with its
  ``time.time()``, then split their bytes into ADTS frames (frame k has arrived when the
  read holding its last byte returned), decode them with PyAV (one AAC decoder per
  listener, one packet per frame) and play them out on the same model clock. A marker's
  onset, found in the decoded PCM (``find_onsets``), at decoded sample j (frame k = j div
  1024) plays at t0 + j/48000 + the stall before frame k; latency = that - its send time,
  pooled over listeners (p50/p95). The decoded PCM is played as decoded, as a player of an
  ADTS stream does: ffmpeg's AAC decoder returns frame k's 1024 samples as soon as it has
  frame k (no decoder delay), and its output is the encoder's input delayed by exactly
  1024 samples (the encoder's priming delay, checked on this build: ADTS has no edit list
  to remove it, and mid-stream nothing could), so the latency includes the encoder's 21.3
  ms, as in a real player; the mapping is exact to the sample, only the stall bookkeeping
  is per frame. Each onset is paired with its send by an estimate of when it was sent that
  comes from the arrival of live frames alone (frames go out in real time, so frame k left
  the server no later than min over k' >= k of arrival(k') - (k' - k)·21.3 ms), within
  half the marker spacing; the latency itself is computed from the exact send time. Start
  the players once the source has been on for longer than the burst (~8 s): before that
  the burst, hence the latency, is shorter.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import os
import queue
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import av
import numpy as np

from _http import Connection, HttpError
from _latency_hls import FRAME, RATE, find_onsets, marker, match, percentiles
from _latency_player import STALL_TOLERANCE_S
from _util import BenchError, free_port, require_taskset, stop_group

MOUNT = "/live.aac"
#: samples per AAC frame (one ADTS frame = one raw AAC frame here)
AAC_SAMPLES = 1024
AAC_FRAME_S = AAC_SAMPLES / RATE
BITRATE = "64k"
#: level of the noise bed under the markers (see the module docstring)
NOISE_DBFS = -60.0
#: sockets one fleet process may hold (the per-process fd hard limit is 20,000 here)
MAX_PER_PROCESS = 18_000
ICECAST_WEB = Path("/usr/share/icecast2/web")
ICECAST_ADMIN = Path("/usr/share/icecast2/admin")


# --- the server ---------------------------------------------------------------------------


@dataclass
class Icecast:
    """A running Icecast: where it listens, its process, the source password."""

    port: int
    pid: int
    source_password: str
    mount: str = MOUNT
    error_log: Path | None = None

    @property
    def url(self) -> str:
        """The listener URL of the mount."""
        return f"http://127.0.0.1:{self.port}{self.mount}"

    @property
    def source_url(self) -> str:
        """Where ffmpeg sends the stream (``icecast://`` protocol)."""
        return f"icecast://source:{self.source_password}@127.0.0.1:{self.port}{self.mount}"

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, all threads (``/proc/<pid>/stat``)."""
        return process_cpu_seconds(self.pid)


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _config(*, port: int, clients: int, source_pw: str, admin_pw: str, root: Path) -> str:
    # burst-on-connect, burst-size and queue-size are deliberately absent: Icecast's
    # defaults apply (burst-on-connect 1, burst-size 65536 bytes, queue-size 512000 bytes;
    # Debian's sample icecast.xml sets 1 / 65535 / 524288). The burst is what a new
    # listener gets at once, the newest 64 KiB: ~7.8 s of a 64 kbit/s AAC stream, so a
    # player that starts playing at its first byte plays that far behind live.
    return f"""<icecast>
    <location>bench</location>
    <admin>bench@localhost</admin>
    <hostname>127.0.0.1</hostname>
    <limits>
        <clients>{clients}</clients>
        <sources>2</sources>
        <client-timeout>30</client-timeout>
        <header-timeout>15</header-timeout>
        <source-timeout>10</source-timeout>
    </limits>
    <authentication>
        <source-password>{source_pw}</source-password>
        <relay-password>{secrets.token_hex(16)}</relay-password>
        <admin-user>admin</admin-user>
        <admin-password>{admin_pw}</admin-password>
    </authentication>
    <listen-socket>
        <port>{port}</port>
        <bind-address>127.0.0.1</bind-address>
    </listen-socket>
    <fileserve>1</fileserve>
    <paths>
        <basedir>{root}</basedir>
        <logdir>{root / "log"}</logdir>
        <webroot>{ICECAST_WEB}</webroot>
        <adminroot>{ICECAST_ADMIN}</adminroot>
    </paths>
    <logging>
        <accesslog>access.log</accesslog>
        <errorlog>error.log</errorlog>
        <loglevel>3</loglevel>
        <logsize>10000</logsize>
    </logging>
    <security>
        <chroot>0</chroot>
        <changeowner>
            <user>nobody</user>
            <group>nogroup</group>
        </changeowner>
    </security>
</icecast>
"""


def _tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name} is empty)"


@contextlib.contextmanager
def running_icecast(workdir: Path, *, cpu: int, max_listeners: int) -> Iterator[Icecast]:
    """Icecast 2.4 on a free 127.0.0.1 port, pinned to ``cpu``, with room for
    ``max_listeners``; yields once it answers HTTP, stops it at the end (SIGTERM, then
    SIGKILL). Files go to ``workdir/icecast`` (config, logs); ``workdir`` is made
    traversable by others because Icecast drops to ``nobody`` before opening its logs."""
    binary = shutil.which("icecast2") or shutil.which("icecast")
    if binary is None:
        raise BenchError("icecast2 not found (Debian package icecast2)")
    taskset = require_taskset()
    root = workdir / "icecast"
    logs = root / "log"
    logs.mkdir(parents=True)
    # icecast2 opens its logs after switching to nobody: it needs to reach and write them
    os.chmod(workdir, os.stat(workdir).st_mode & 0o7777 | 0o011)  # noqa: S103
    os.chmod(root, 0o755)  # noqa: S103
    os.chmod(logs, 0o777)  # noqa: S103
    port = free_port()
    source_pw = secrets.token_hex(16)
    config = root / "icecast.xml"
    config.write_text(
        _config(
            port=port,
            clients=max_listeners + 100,
            source_pw=source_pw,
            admin_pw=secrets.token_hex(16),
            root=root,
        )
    )
    os.chmod(config, 0o644)
    error_log = logs / "error.log"
    with (root / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [taskset, "-c", str(cpu), binary, "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )
    server = Icecast(port=port, pid=proc.pid, source_password=source_pw, error_log=error_log)

    def died() -> BenchError:
        return BenchError(
            f"icecast2 exited with code {proc.returncode}; last lines of its error log:\n"
            f"{_tail(error_log)}\nits stdout:\n{_tail(root / 'stdout.log')}"
        )

    try:
        _wait_http(proc, port, died)
        try:
            yield server
        except BaseException:
            if proc.poll() is not None:
                print(died(), file=sys.stderr)
            raise
        if proc.poll() is not None:
            raise died()
    finally:
        stop_group(proc)


def _wait_http(proc: subprocess.Popen[bytes], port: int, died: Any, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise died()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.settimeout(2.0)
            s.sendall(b"GET /status-json.xsl HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            if s.recv(16).startswith(b"HTTP/"):
                return
        time.sleep(0.1)
    raise BenchError(f"icecast2 did not answer HTTP on port {port} within {timeout:.0f} s")


# --- the source ---------------------------------------------------------------------------


class MarkerFeed:
    """ffmpeg feeding Icecast live from PCM that this process writes in real time (see the
    module docstring). The writer is a thread, so the feed keeps time while the event loop
    (or a blocking call such as :func:`run_fleet`) is busy."""

    def __init__(
        self,
        icecast: Icecast,
        *,
        cpu: int,
        every_s: float = 2.5,
        first_after_s: float = 1.0,
        noise_dbfs: float | None = NOISE_DBFS,
    ) -> None:
        self.icecast = icecast
        self.cpu = cpu
        #: ``time.time()`` when the frame holding each marker's first sample was written
        self.sent: list[float] = []
        #: ``time.monotonic()`` of the first frame written
        self.started: float | None = None
        self.frames_written = 0
        #: frames written more than 20 ms after they were due (the writer fell behind)
        self.late_frames = 0
        self._every = round(every_s * RATE / FRAME)
        self._first = round(first_after_s * RATE / FRAME)
        self._noise = 0.0 if noise_dbfs is None else 10 ** (noise_dbfs / 20)
        self._markers = True
        self._halt = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer: threading.Thread | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=30)
        self._error: str | None = None

    def command(self) -> list[str]:
        return [
            require_taskset(), "-c", str(self.cpu),
            shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin",
            "-loglevel", "warning",
            "-fflags", "+nobuffer",
            "-f", "s16le", "-ar", str(RATE), "-ch_layout", "mono", "-i", "pipe:0",
            "-c:a", "aac", "-b:a", BITRATE, "-ar", str(RATE), "-ac", "1",
            "-flush_packets", "1",
            "-f", "adts", "-content_type", "audio/aac",
            self.icecast.source_url,
        ]  # fmt: skip

    async def start(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Start ffmpeg and the writer; return once Icecast serves the mount."""
        self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if await _mount_answers(self.icecast.port, self.icecast.mount):
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"Icecast does not serve {self.icecast.mount} {timeout:.0f} s after "
                    f"ffmpeg started; ffmpeg says:\n{self.stderr_tail()}\nIcecast's error "
                    f"log:\n{_tail(self.icecast.error_log)}"
                )
            await asyncio.sleep(0.2)

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        assert self._proc.stderr is not None
        threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True).start()
        self._writer = threading.Thread(target=self._write, name="marker-feed", daemon=True)
        self._writer.start()

    def quiet(self) -> None:
        """No more markers from now on (the noise bed goes on)."""
        self._markers = False

    def check(self) -> None:
        """Raise if ffmpeg or the writer has died."""
        if self._proc is not None and self._proc.poll() is not None and not self._halt.is_set():
            raise BenchError(
                f"ffmpeg exited with code {self._proc.returncode}:\n{self.stderr_tail()}"
            )
        if self._error is not None:
            raise BenchError(f"the feed's writer failed: {self._error}\n{self.stderr_tail()}")

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr) or "(nothing on stderr)"

    async def stop(self) -> None:
        """Stop writing, close ffmpeg's stdin, wait for it (kill it after 5 s)."""
        died_early = self._proc is not None and self._proc.poll() is not None
        self._halt.set()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join, 5.0)
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            await asyncio.to_thread(proc.wait, 5.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5.0)
        if died_early:
            raise BenchError(
                f"ffmpeg had exited with code {proc.returncode}:\n{self.stderr_tail()}"
            )

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._stderr.append(line.decode(errors="replace").rstrip())

    def _write(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        stdin = proc.stdin
        rng = np.random.default_rng()
        blip = marker()
        pending: np.ndarray[Any, np.dtype[np.float32]] | None = None
        period = FRAME / RATE
        start = time.monotonic()
        self.started = start
        index = 0
        try:
            while not self._halt.is_set():
                due = start + index * period
                wait = due - time.monotonic()
                if wait > 0 and self._halt.wait(wait):
                    break
                if time.monotonic() - due > period:
                    self.late_frames += 1
                pcm = (rng.standard_normal(FRAME) * self._noise).astype(np.float32)
                starts = (
                    self._markers
                    and index >= self._first
                    and (index - self._first) % self._every == 0
                )
                if starts:
                    pending = blip
                if pending is not None:
                    n = min(FRAME, pending.size)
                    pcm[:n] += pending[:n]
                    pending = pending[n:] if pending.size > n else None
                stdin.write(np.round(np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
                if starts:
                    self.sent.append(time.time())
                self.frames_written += 1
                index += 1
        except OSError as exc:  # ffmpeg went away
            if not self._halt.is_set():
                self._error = f"{type(exc).__name__}: {exc}"


async def _mount_answers(port: int, mount: str) -> bool:
    """Whether ``GET mount`` answers 200 (the source is connected)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {mount} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 2)
        parts = line.split()
        return len(parts) >= 2 and parts[1] == b"200"
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


# --- ADTS ---------------------------------------------------------------------------------


def adts_length(buf: bytes, pos: int) -> int:
    """Length of the ADTS frame whose header starts at ``pos`` (needs 6 bytes), 0 if
    there is no ADTS header there."""
    if buf[pos] != 0xFF or buf[pos + 1] & 0xF6 != 0xF0:
        return 0
    n = ((buf[pos + 3] & 0x03) << 11) | (buf[pos + 4] << 3) | (buf[pos + 5] >> 5)
    return n if n >= 7 else 0


def adts_sync(buf: bytes) -> int:
    """Offset of the first ADTS header that the next frame's header confirms, -1 if
    there is none yet (a listener's first bytes need not start on a frame: Icecast's
    burst starts where one of the source's reads started)."""
    end = len(buf)
    pos = buf.find(b"\xff")
    while pos >= 0 and pos + 6 <= end:
        n = adts_length(buf, pos)
        if n:
            if pos + n + 6 > end:
                return -1
            if adts_length(buf, pos + n):
                return pos
        pos = buf.find(b"\xff", pos + 1)
    return -1


def adts_count(buf: bytes, pos: int) -> tuple[int, int, bool]:
    """``(whole frames from pos, offset after them, still in sync)``."""
    end = len(buf)
    frames = 0
    while pos + 6 <= end:
        if buf[pos] != 0xFF or buf[pos + 1] & 0xF6 != 0xF0:
            return frames, pos, False
        n = ((buf[pos + 3] & 0x03) << 11) | (buf[pos + 4] << 3) | (buf[pos + 5] >> 5)
        if n < 7:
            return frames, pos, False
        if pos + n > end:
            break
        pos += n
        frames += 1
    return frames, pos, True


def _request(host: str, port: int, path: str) -> bytes:
    # what a browser's <audio> sends, less cookies: no Icy-MetaData, so no ICY metadata
    # is interleaved with the stream
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: tribune-bench\r\n"
        "Accept: */*\r\n\r\n"
    ).encode()


async def _join(host: str, port: int, path: str) -> str:
    """POST ``path`` (a Space's join) and return the answer's stream path."""
    conn = Connection(host, port)
    try:
        status, _, body = await conn.request("POST", path, {"Content-Type": "application/json"})
    finally:
        conn.close()
    if status != 201:
        raise HttpError(f"join answered {status}")
    return str(json.loads(body)["urls"]["stream"])


def _split_url(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"


# --- the listener fleet -------------------------------------------------------------------


class _Stats:
    __slots__ = (
        "bytes", "connected", "error_kinds", "errors", "frames", "playing_end", "resyncs",
        "stall_s", "stalls", "started",
    )  # fmt: skip

    def __init__(self) -> None:
        self.connected = 0
        self.started = 0
        self.errors = 0
        self.stalls = 0
        self.stall_s = 0.0
        self.frames = 0
        self.bytes = 0
        self.resyncs = 0
        self.playing_end = 0
        self.error_kinds: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def counters(self) -> dict[str, Any]:
        return {
            "connected": self.connected, "started": self.started, "errors": self.errors,
            "stalls": self.stalls, "stall_s": self.stall_s, "frames": self.frames,
            "bytes": self.bytes,
        }  # fmt: skip


class _Listener(asyncio.Protocol):
    """One listener: reads the stream, counts whole ADTS frames, plays them on the model
    clock. Everything is per read, nothing per frame but the header scan."""

    #: media seconds per counted unit
    unit_s = AAC_FRAME_S

    def __init__(self, stats: _Stats, request: bytes, asked: float) -> None:
        self.stats = stats
        self.request = request
        self.asked = asked
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.status = 0
        self.answered = 0.0
        self.tail = b""
        self.synced = False
        self.frames = 0
        self.t0 = -1.0
        self.stall = 0.0
        self.bytes = 0
        self.burst = 0
        self.open = True
        self.chunked = False
        self.closing = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 16_384:
                    self._fail("bad response")
                return
            first = bytes(self.head[: self.head.find(b"\r\n")]).split(b" ", 2)
            status = int(first[1]) if len(first) >= 2 and first[1].isdigit() else -1
            if status != 200:
                self._fail(f"status {status}")
                return
            self.status = 200
            self.chunked = b"chunked" in bytes(self.head[:end]).lower()
            self.answered = now
            self.stats.connected += 1
            data = bytes(self.head[end + 4 :])
            self.head = bytearray()
            if not data:
                return
        stats = self.stats
        size = len(data)
        self.bytes += size
        stats.bytes += size
        if now < self.answered + 1.0:
            self.burst += size
        n = self._count(data)
        if not n:
            return
        if self.t0 < 0:
            self.t0 = now
            stats.started += 1
        else:
            due = self.t0 + self.frames * self.unit_s + self.stall
            if now > due + STALL_TOLERANCE_S:
                stats.stalls += 1
                stats.stall_s += now - due
                self.stall += now - due
        self.frames += n
        stats.frames += n

    def _count(self, data: bytes) -> int:
        """Whole ADTS frames completed by ``data``."""
        stats = self.stats
        buf = self.tail + data if self.tail else data
        pos = 0
        if not self.synced:
            pos = adts_sync(buf)
            if pos < 0:
                self.tail = buf[-16_384:]
                return 0
            self.synced = True
        n, pos, in_sync = adts_count(buf, pos)
        if in_sync:
            self.tail = buf[pos:]
        else:
            stats.resyncs += 1
            self.synced = False
            self.tail = buf[pos + 1 :]
        return n

    def playing(self, now: float) -> bool:
        """Connected, started, and not run dry at ``now``."""
        return (
            self.open
            and self.t0 >= 0
            and self.t0 + self.frames * self.unit_s + self.stall + STALL_TOLERANCE_S >= now
        )

    def finish(self, now: float) -> None:
        """The run is over: count a stall in progress, close."""
        stats = self.stats
        if self.open:
            if not self.status:
                stats.error("no response")
            elif self.t0 >= 0:
                due = self.t0 + self.frames * self.unit_s + self.stall
                if now > due + STALL_TOLERANCE_S:
                    stats.stalls += 1
                    stats.stall_s += now - due
                else:
                    stats.playing_end += 1
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, kind: str) -> None:
        self.stats.error(kind)
        self.open = False
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.stats.error("disconnected" if exc is None else f"reset ({type(exc).__name__})")
        self.open = False
        if not self.lost.done():
            self.lost.set_result(None)


@dataclass
class _FleetPlan:
    url: str
    listeners: int
    procs: int
    ramp: float
    start_at: float
    until: float
    cpu: int | None
    #: the Listener class (ADTS by default; bench/_stream.py counts fMP4 fragments)
    listener: type[_Listener] = _Listener
    #: a join path: each listener first joins (POST) and GETs the
    #: ``urls.stream`` of the answer instead of the URL's path (Tribune's stream)
    join: str | None = None


def _fleet_worker(plan: _FleetPlan, wid: int, out: Any) -> None:
    if plan.cpu is not None:
        os.sched_setaffinity(0, {plan.cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_fleet_work(plan, wid, out))


async def _fleet_work(plan: _FleetPlan, wid: int, out: Any) -> None:
    loop = asyncio.get_running_loop()
    host, port, path = _split_url(plan.url)
    request = _request(host, port, path)
    stats = _Stats()
    active: list[_Listener] = []
    connecting = 0
    # listener g of the whole fleet arrives at start_at + ramp * g / listeners; this
    # process has g = wid, wid + procs, ...
    mine = range(wid, plan.listeners, plan.procs)

    async def connect(asked: float) -> None:
        nonlocal connecting
        connecting += 1
        try:
            wanted = request
            if plan.join is not None:
                wanted = _request(host, port, await _join(host, port, plan.join))
            listener = plan.listener(stats, wanted, asked)
            await loop.create_connection(lambda: listener, host, port)
        except (OSError, HttpError, ValueError, KeyError) as exc:
            stats.error(f"connect ({type(exc).__name__})")
            return
        finally:
            connecting -= 1
        active.append(listener)

    async def arrivals() -> None:
        for g in mine:
            at = plan.start_at + plan.ramp * g / plan.listeners
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if time.monotonic() >= plan.until:
                break
            task = loop.create_task(connect(at))
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            playing = sum(1 for x in active if x.playing(now))
            out.put(("tick", wid, {**stats.counters(), "playing": playing}))

    pending: set[asyncio.Task[None]] = set()
    reporter = loop.create_task(report())
    spawner = loop.create_task(arrivals())
    await asyncio.sleep(max(0.0, plan.until - time.monotonic()))
    spawner.cancel()
    end = time.monotonic()
    for task in list(pending):
        task.cancel()
    if connecting:
        stats.error("connect (still pending at the end)")
    startup: list[float] = []
    burst: list[int] = []
    rates: list[float] = []
    for x in active:
        if x.t0 >= 0:
            startup.append(x.t0 - x.asked)
        if x.status == 200 and x.open:
            burst.append(x.burst)
            if end - x.answered > 2.0:
                rates.append((x.bytes - x.burst) / (end - x.answered - 1.0))
        x.finish(end)
    reporter.cancel()
    await asyncio.sleep(0.2)  # let the aborts go out
    out.put(("done", wid, {**stats.counters(), "playing": stats.playing_end,
                           "error_kinds": stats.error_kinds, "resyncs": stats.resyncs,
                           "startup": startup, "burst": burst, "rates": rates}))  # fmt: skip


def run_fleet(
    url: str,
    listeners: int,
    *,
    duration: float,
    ramp: float,
    procs: int,
    cpu: int | None,
    listener: type[_Listener] = _Listener,
    join: str | None = None,
    label: str = "icecast",
) -> dict[str, Any]:
    """``listeners`` simulated Icecast listeners of ``url`` (see the module docstring),
    over ``procs`` processes pinned to ``cpu`` (if given), arriving over ``ramp`` s and
    listening until ``ramp + duration`` s after the first arrival. Progress on stderr."""
    if listeners < 1 or procs < 1 or duration <= 0 or ramp < 0:
        raise ValueError("need listeners >= 1, procs >= 1, duration > 0, ramp >= 0")
    per_proc = -(-listeners // procs)
    if per_proc > MAX_PER_PROCESS:
        raise BenchError(
            f"{per_proc} listeners per process is over {MAX_PER_PROCESS} sockets: use more procs"
        )
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.monotonic() + 1.5  # spawned interpreters need a moment to start
    plan = _FleetPlan(
        url, listeners, procs, ramp, start_at, start_at + ramp + duration, cpu, listener, join
    )
    workers = [
        ctx.Process(target=_fleet_worker, args=(plan, wid, out), daemon=True)
        for wid in range(min(procs, listeners))
    ]
    for w in workers:
        w.start()
    latest: dict[int, dict[str, Any]] = {}
    finals: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    last_bytes, last_t, last_print = 0, start_at, 0.0
    tty = sys.stderr.isatty()
    deadline = plan.until + 60
    while len(finals) < len(workers) and time.monotonic() < deadline:
        try:
            kind, wid, data = out.get(timeout=1.0)
        except queue.Empty:
            if not any(w.is_alive() for w in workers):
                break
            continue
        latest[wid] = data
        if kind == "done":
            finals.append(data)
            continue
        now = time.monotonic()
        if now - last_t < 0.9 or len(latest) < len(workers):
            continue
        total = _fleet_sum(latest.values())
        rate = (total["bytes"] - last_bytes) / max(1e-6, now - last_t)
        last_bytes, last_t = total["bytes"], now
        timeline.append(
            {
                "t": round(now - start_at, 1),
                "connected": total["connected"],
                "playing": total["playing"],
                "errors": total["errors"],
                "stalls": total["stalls"],
                "mbit_per_s": round(rate * 8e-6, 2),
            }
        )
        if tty or now - last_print >= 5:
            last_print = now
            bar = "#" * round(30 * total["connected"] / listeners)
            line = (
                f"[{label} {bar:.<30}] {total['playing']:>6}/{listeners} playing  "
                f"{rate * 8e-6:>7.1f} Mbit/s  errors {total['errors']}  "
                f"stalls {total['stalls']}"
            )
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr,
                  flush=True)  # fmt: skip
    for w in workers:
        w.join(timeout=10)
        if w.is_alive():
            w.kill()
    if tty:
        print(file=sys.stderr)
    if len(finals) < len(workers):
        raise BenchError(f"only {len(finals)} of {len(workers)} fleet processes reported")
    total = _fleet_sum(finals)
    kinds: dict[str, int] = {}
    for f in finals:
        for k, v in f["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    return {
        "listeners": listeners,
        "connected": total["connected"],
        "started": total["started"],
        "playing_at_end": total["playing"],
        "errors": total["errors"],
        "error_kinds": kinds,
        "stalls": total["stalls"],
        "stall_s": total["stall_s"],
        "frames": total["frames"],
        "bytes": total["bytes"],
        "resyncs": sum(f["resyncs"] for f in finals),
        "startup_s": percentiles([s for f in finals for s in f["startup"]]),
        "burst_bytes": percentiles([b for f in finals for b in f["burst"]]),
        "bytes_per_s": percentiles([r for f in finals for r in f["rates"]]),
        "timeline": timeline,
        "ramp_s": ramp,
        "duration_s": duration,
        "procs": len(workers),
    }


def _fleet_sum(items: Any) -> dict[str, Any]:
    keys = ("connected", "started", "playing", "errors", "stalls", "stall_s", "frames", "bytes")
    total: dict[str, Any] = dict.fromkeys(keys, 0)
    for item in items:
        for k in keys:
            total[k] += item[k]
    return total


# --- glass to glass -----------------------------------------------------------------------


@dataclass
class _Capture:
    requested: float
    times: list[float] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    error: str | None = None


async def _capture(url: str, delay: float, duration: float) -> _Capture:
    host, port, path = _split_url(url)
    await asyncio.sleep(delay)
    cap = _Capture(time.time())
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError) as exc:
        cap.error = f"connect ({type(exc).__name__})"
        return cap
    try:
        writer.write(_request(host, port, path))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"200":
            cap.error = f"status {status[1].decode() if len(status) > 1 else '?'}"
            return cap
        deadline = cap.requested + duration
        while (left := deadline - time.time()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), left)
            except TimeoutError:
                break
            if not data:
                cap.error = "disconnected"
                break
            cap.times.append(time.time())
            cap.chunks.append(data)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        cap.error = f"{type(exc).__name__}"
    finally:
        writer.close()
    return cap


def _play(cap: _Capture) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """Decode and play out one capture: ``[(estimated send, play time)]`` per onset, and
    the player's figures."""
    data = b"".join(cap.chunks)
    info: dict[str, Any] = {"error": cap.error, "bytes": len(data), "frames": 0}
    pos = adts_sync(data)
    if pos < 0:
        info["error"] = info["error"] or "no ADTS frames"
        return [], info
    ends = np.cumsum([len(c) for c in cap.chunks])
    times = np.asarray(cap.times)
    starts: list[int] = []
    while pos + 6 <= len(data):
        n = adts_length(data, pos)
        if not n:
            info["error"] = info["error"] or f"lost ADTS sync at byte {pos}"
            break
        if pos + n > len(data):
            break
        starts.append(pos)
        pos += n
    if not starts:
        info["error"] = info["error"] or "no whole ADTS frame"
        return [], info
    bounds = [*starts, pos]
    last_byte = np.asarray(bounds[1:]) - 1
    arrived = times[np.searchsorted(ends, last_byte, side="right")]
    decoder = av.CodecContext.create("aac", "r")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    pcm = np.zeros(len(starts) * AAC_SAMPLES, np.float32)
    undecodable = 0
    for k in range(len(starts)):
        try:
            frames = decoder.decode(av.Packet(data[bounds[k] : bounds[k + 1]]))
        except av.FFmpegError:
            undecodable += 1
            continue
        out = [f.to_ndarray().reshape(-1) for fr in frames for f in resampler.resample(fr)]
        if out:
            got = np.concatenate(out)[:AAC_SAMPLES]
            pcm[k * AAC_SAMPLES : k * AAC_SAMPLES + got.size] = got
    # playout: frame k is due at t0 + k * 21.3 ms + the stall so far
    t0 = float(arrived[0])
    stall = np.zeros(len(starts))
    stalls, stall_s = 0, 0.0
    for k, at in enumerate(arrived):
        due = t0 + k * AAC_FRAME_S + stall_s
        if at > due + STALL_TOLERANCE_S:
            stalls += 1
            stall_s += float(at) - due
        stall[k] = stall_s
    # frame k left the server no later than min_{k' >= k} arrived[k'] - (k' - k) * 21.3 ms
    k_idx = np.arange(len(starts))
    left = np.minimum.accumulate((arrived - k_idx * AAC_FRAME_S)[::-1])[::-1] + k_idx * AAC_FRAME_S
    heard: list[tuple[float, float]] = []
    for j in find_onsets(pcm):
        if j < 2 * AAC_SAMPLES:  # the decoder's first frame, or a marker cut by the start
            continue
        k = j // AAC_SAMPLES
        played = t0 + j / RATE + float(stall[k])
        estimate = float(left[k]) + (j - k * AAC_SAMPLES) / RATE
        heard.append((estimate, played))
    end = float(arrived[-1])
    info.update(
        frames=len(starts),
        undecodable=undecodable,
        startup_s=t0 - cap.requested,
        stalls=stalls,
        stall_s=stall_s,
        # audio the player held beyond its playout position when it stopped reading
        buffered_at_end_s=t0 + len(starts) * AAC_FRAME_S + stall_s - end,
        markers_found=len(heard),
    )
    return heard, info


async def glass_to_glass(
    url: str, sent: list[float], *, players: int, duration: float
) -> dict[str, Any]:
    """``players`` listeners of ``url`` (started over 0.5 s), each reading for
    ``duration`` s; their markers against ``sent`` (see the module docstring)."""
    caps = await asyncio.gather(
        *(_capture(url, 0.5 * i / max(1, players), duration) for i in range(players))
    )
    analysed = await asyncio.to_thread(lambda: [_play(c) for c in caps])
    sends = sorted(sent)
    # the nominal spacing: a source writer that fell behind and caught up can send two
    # markers closer together in wall time than they are in the audio
    spacing = float(np.median(np.diff(sends))) if len(sends) > 1 else 2.5
    half = spacing / 2
    latencies: list[float] = []
    offsets: list[float] = []
    per_player: list[dict[str, Any]] = []
    for heard, info in analysed:
        played_at = dict(heard)
        pairs = match(sends, [e for e, _ in heard], within=half, early=half)
        lat = [played_at[e] - s for s, e in pairs]
        latencies += lat
        offsets += [e - s for s, e in pairs]
        info["markers_paired"] = len(pairs)
        info["latency_s"] = percentiles(lat)
        per_player.append(info)
    return {
        "players": players,
        "duration_s": duration,
        "latency_s": percentiles(latencies),
        "latencies": latencies,
        "startup_s": percentiles([p["startup_s"] for p in per_player if "startup_s" in p]),
        "stalls": sum(p.get("stalls", 0) for p in per_player),
        "stall_s": sum(p.get("stall_s", 0.0) for p in per_player),
        # estimated send (from live arrivals) - real send: the encoder + relay delay of a
        # live frame; only used to pair, must stay well under half the marker spacing
        "pair_offset_s": percentiles(offsets),
        "per_player": per_player,
    }
