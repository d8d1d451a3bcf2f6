"""Tribune's stream (``/listen/{space}/{token}``: one response carrying every part) in
bench/fanout.py: the fleet's listener and the glass-to-glass players.

* Fleet: ``_icecast.run_fleet`` with :class:`FragmentListener` and ``join``: each
  simulated listener joins the Space (``POST /api/spaces/{id}/join``, through the edge),
  then GETs the ``urls.stream`` of the answer on a new connection and reads it
  continuously. It counts whole fragments (top-level ``mdat`` boxes; one per 0.341 s
  part) as their last byte arrives and plays them on the same model clock as the Icecast
  listeners (playback starts with the first whole part; part k is due at t0 + k x part +
  the stall so far; later than due + 5 ms is a stall).
* Glass to glass (:func:`glass_to_glass`): a few players that join, fetch ``urls.init``,
  read the stream recording each read's ``time.time()``, then decode the parts (PyAV, one
  decoder for the stream, ``FragmentDecoder``) and play them out like the web player
  (``web/static/space/stream.js``): playback starts as soon as :data:`START_BUFFER_S` of
  audio has arrived, :data:`TARGET_S` behind the newest sample received, and runs in real
  time; a part arriving after it is due is a stall that delays everything after it.
  Latency = when a marker's first sample plays - when it was handed to aiortc.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from _http import Connection
from _icecast import _Listener, _split_url
from _latency_hls import RATE, FragmentDecoder, find_onsets, match, percentiles
from _latency_player import STALL_TOLERANCE_S

PART_S = 16 * 1024 / RATE
#: what the web player waits for before it starts, and how far behind the newest audio
#: it then plays (stream.js)
START_BUFFER_S = 0.3
TARGET_S = 0.4


def whole_boxes(buf: bytes, pos: int = 0) -> tuple[list[tuple[int, bytes]], int]:
    """``[(offset, type)]`` of the whole top-level boxes in ``buf`` from ``pos``, and
    where the first incomplete one starts."""
    boxes = []
    while pos + 8 <= len(buf):
        size = int.from_bytes(buf[pos : pos + 4], "big")
        if size < 8:
            raise ValueError(f"bad box size {size} at {pos}")
        if pos + size > len(buf):
            break
        boxes.append((pos, buf[pos + 4 : pos + 8]))
        pos += size
    return boxes, pos


class FragmentListener(_Listener):
    """A fleet listener of the stream: counts whole parts (``mdat`` boxes)."""

    unit_s = PART_S
    raw = b""

    def _count(self, data: bytes) -> int:
        if self.chunked:  # the Python origin streams chunked; nchan writes the bytes raw
            data, self.raw = _dechunk(self.raw + data)
        buf = self.tail + data if self.tail else data
        try:
            boxes, pos = whole_boxes(buf)
        except ValueError:
            self._fail("bad box")
            return 0
        self.tail = buf[pos:]
        return sum(1 for _, kind in boxes if kind == b"mdat")


@dataclass
class _Capture:
    requested: float
    init: bytes = b""
    times: list[float] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    error: str | None = None


async def _capture(url: str, join: str, delay: float, duration: float) -> _Capture:
    host, port, _ = _split_url(url)
    await asyncio.sleep(delay)
    cap = _Capture(time.time())
    conn = Connection(host, port)
    try:
        status, _, body = await conn.request("POST", join, {"Content-Type": "application/json"})
        if status != 201:
            cap.error = f"join {status}"
            return cap
        urls = json.loads(body)["urls"]
        status, _, cap.init = await conn.request("GET", urls["init"])
        if status != 200:
            cap.error = f"init {status}"
            return cap
    finally:
        conn.close()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {urls['stream']} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            cap.error = f"stream {head.split(b' ', 2)[1].decode()}"
            return cap
        chunked = b"chunked" in head.lower()
        deadline = cap.requested + duration
        raw = b""
        while (left := deadline - time.time()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), left)
            except TimeoutError:
                break
            if not data:
                cap.error = "disconnected"
                break
            now = time.time()
            if chunked:  # the Python origin; nchan writes raw bytes
                raw += data
                data, raw = _dechunk(raw)
            if data:
                cap.times.append(now)
                cap.chunks.append(data)
    finally:
        writer.close()
    return cap


def _dechunk(raw: bytes) -> tuple[bytes, bytes]:
    """Whole chunks' payloads of HTTP/1.1 chunked ``raw``, and what is left over."""
    out = b""
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return out, raw
        size = int(raw[:line_end].split(b";")[0], 16)
        if len(raw) < line_end + 2 + size + 2:
            return out, raw
        out += raw[line_end + 2 : line_end + 2 + size]
        raw = raw[line_end + 2 + size + 2 :]
        if size == 0:
            return out, raw


def _play(cap: _Capture) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """``[(program time, play time)]`` per marker onset heard, and the player's figures."""
    data = b"".join(cap.chunks)
    info: dict[str, Any] = {"error": cap.error, "bytes": len(data), "parts": 0}
    if not data or not cap.init:
        info["error"] = info["error"] or "nothing received"
        return [], info
    boxes, end = whole_boxes(data)
    ends = np.cumsum([len(c) for c in cap.chunks])
    times = np.asarray(cap.times)
    decoder = FragmentDecoder(cap.init)
    parts: list[tuple[float, int, np.ndarray]] = []  # (arrived, pts, pcm)
    start = 0
    for pos, kind in boxes:
        if kind != b"mdat":
            continue
        size = int.from_bytes(data[pos : pos + 4], "big")
        arrived = float(times[np.searchsorted(ends, pos + size - 1, side="right")])
        chunk = decoder.decode(data[start : pos + size])
        parts.append((arrived, chunk.pts, chunk.pcm))
        start = pos + size
    if not parts:
        info["error"] = info["error"] or "no whole part"
        return [], info
    # playback starts once START_BUFFER_S has arrived, TARGET_S behind the newest sample
    first_pts = parts[0][1]
    t0, m0 = None, 0
    for arrived, pts, pcm in parts:
        if (pts + pcm.size - first_pts) / RATE >= START_BUFFER_S:
            t0 = arrived
            m0 = max(first_pts, pts + pcm.size - round(TARGET_S * RATE))
            break
    if t0 is None:
        info["error"] = info["error"] or "never buffered enough to start"
        return [], info
    stall_s, stalls = 0.0, 0
    offsets = []
    for arrived, pts, _ in parts:
        due = t0 + (max(pts, m0) - m0) / RATE + stall_s
        if pts + 0 >= m0 and arrived > due + STALL_TOLERANCE_S:
            stalls += 1
            stall_s += arrived - due
        offsets.append(stall_s)
    x = np.concatenate([p[2] for p in parts])
    starts = np.array([p[1] for p in parts])
    heard: list[tuple[float, float]] = []
    for j in find_onsets(x):
        m = first_pts + j
        if m < m0 + RATE // 100:
            continue
        k = int(np.searchsorted(starts, m, side="right") - 1)
        heard.append((float(m), t0 + (m - m0) / RATE + offsets[k]))
    info.update(
        parts=len(parts), startup_s=t0 - cap.requested, stalls=stalls, stall_s=stall_s,
        markers_found=len(heard), trailing_bytes=len(data) - end,
    )  # fmt: skip
    return heard, info


async def glass_to_glass(
    url: str, join: str, sent: list[float], *, players: int, duration: float
) -> dict[str, Any]:
    """``players`` stream players on ``url`` (joining with ``join``), each for
    ``duration`` s, started over one part; their markers against ``sent``."""
    caps = await asyncio.gather(
        *(_capture(url, join, PART_S * i / max(1, players), duration) for i in range(players))
    )
    analysed = await asyncio.to_thread(lambda: [_play(c) for c in caps])
    latencies: list[float] = []
    per_player = []
    for heard, info in analysed:
        played = [p for _, p in heard]
        # a marker plays after it was sent, within the stream's few seconds at most
        pairs = match(sent, played, within=2.0, early=0.0)
        lat = [p - s for s, p in pairs]
        latencies += lat
        info["latency_s"] = percentiles(lat)
        per_player.append(info)
    return {
        "players": players,
        "latency_s": percentiles(latencies),
        "latencies": latencies,
        "markers": len(latencies),
        "stalls": sum(p.get("stalls", 0) for p in per_player),
        "errors": [p["error"] for p in per_player if p.get("error")],
        "per_player": per_player,
    }
