"""The latency benchmark's own media server: Tribune's Stage and Broadcast, no control plane.

Run as a script (the benchmark pins it to a CPU like the real server)::

    python bench/_latency_pipeline.py --port 8123 --dir /tmp/x

One ``tribune.stage.Stage`` whose ``on_program`` pushes every tick to two broadcasts of the
same program: the LL-HLS one (``tribune.broadcast.Broadcast``, today's settings) and a
plain-HLS one with 3 s segments and no parts. The plain one is a second ``Broadcast`` with
``parts_per_segment=9, low_latency=False`` when this Tribune has those parameters;
otherwise it is derived from the LL stream: a 3.072 s segment is 9 consecutive LL parts
(their bytes back to back), listed once its last part exists (``/health`` says which).

Routes (no auth): ``POST /whip?user=ID`` (SDP offer -> ``stage.publish``), ``GET
/{ll,plain}/live.m3u8`` (LL: blocking reloads as in ``api/routes/hls.py``),
``/{ll,plain}/init.mp4``, ``/{ll,plain}/<part or segment>``, and ``/probe/...``: for
users whose id starts with ``probe-``, the stage is instrumented (bench-only subclasses
swapped into ``tribune.stage.stage``) to stamp, with ``time.time()``, each RTP packet's
arrival, each Opus frame aiortc's receive buffer lets go to the stage ("decoded": the probe
decodes a copy to find markers), each jitter-buffer pull into the mix, each mix-minus tick
encoded and pushed to the outbound track and each packet that track hands to aiortc's
sender (decoded by the probe likewise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import inspect
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import tribune.stage.stage as stage_module
from _latency_hls import RATE, TimedStream, find_onsets, parse_playlist
from tribune.broadcast import BadBlockingRequest, Broadcast
from tribune.stage import BadOffer, Stage, TooManySessions
from tribune.stage.jitter import JitterBuffer
from tribune.stage.tracks import (
    EncodedMixTrack,
    OpusDecoder,
    bypass_receive_buffer,
    tap_decoded_frames,
)

PLAYLIST = "application/vnd.apple.mpegurl"
MP4 = "audio/mp4"
BLOCK_S = 6.0
PLAIN_PARTS = 9  # 9 x 0.341 s = 3.072 s
PLAIN_WINDOW = 10

_PART = re.compile(r"^part(\d{1,9})\.(\d{1,3})\.m4s$")
_SEGMENT = re.compile(r"^seg(\d{1,9})\.m4s$")

# --- probes -------------------------------------------------------------------------------

_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_user", default=None)


@dataclass
class Probe:
    """Time stamps along one probed speaker's path through the stage."""

    rtp: dict[int, float] = field(default_factory=dict)  # RTP timestamp -> arrival
    first_rtp: int | None = None
    decoded: TimedStream = field(default_factory=TimedStream)
    decoded_pts: list[int] = field(default_factory=list)
    pulled: TimedStream = field(default_factory=TimedStream)  # into the mix (A's input)
    pushed: TimedStream = field(default_factory=TimedStream)  # mix-minus tick (B's output)
    handed: TimedStream = field(default_factory=TimedStream)  # to aiortc's encoder


PROBES: dict[str, Probe] = {}


def _probe() -> Probe | None:
    user = _user.get()
    if user is None or not user.startswith("probe-"):
        return None
    return PROBES.setdefault(user, Probe())


class _TimedJitter(JitterBuffer):
    def __init__(self, target: int, limit: int) -> None:
        super().__init__(target, limit)
        self.probe = _probe()

    def pull(self, n: int) -> Any:
        out = super().pull(n)
        if self.probe is not None:
            self.probe.pulled.add(time.time(), np.zeros(n, np.float32) if out is None else out)
        return out


class _TimedMixMinus(EncodedMixTrack):
    def __init__(self, frame_samples: int, depth: int = 3) -> None:
        super().__init__(frame_samples, depth)
        self.probe = _probe()
        self._pushed_decoder = OpusDecoder()
        self._handed_decoder = OpusDecoder()

    def push(self, payload: bytes) -> None:
        if self.probe is not None and self.readyState == "live":
            pcm = self._pushed_decoder.decode(payload)
            if pcm is not None:
                self.probe.pushed.add(time.time(), pcm)
        super().push(payload)

    async def recv(self) -> Any:
        packet = await super().recv()
        if self.probe is not None:
            pcm = self._handed_decoder.decode(bytes(packet))
            if pcm is not None:
                self.probe.handed.add(time.time(), pcm)
        return packet


def _timed_bypass(receiver: Any) -> bool:
    done = bypass_receive_buffer(receiver)
    probe = _probe()
    if probe is None:
        return done
    handle = receiver._handle_rtp_packet

    async def timed_handle(packet: Any, arrival_time_ms: int) -> None:
        if probe.first_rtp is None:
            probe.first_rtp = packet.timestamp
        probe.rtp.setdefault((packet.timestamp - probe.first_rtp) % 2**32, time.time())
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = timed_handle
    return done


def _timed_tap(receiver: Any, on_frame: Any) -> bool:
    done = tap_decoded_frames(receiver, on_frame)
    probe = _probe()
    if probe is None or not done:
        return done
    tap = receiver._RTCRtpReceiver__decoder_queue
    put = tap.put
    decoder = OpusDecoder()

    def timed_put(item: Any, *args: Any, **kwargs: Any) -> None:
        if item is not None:
            mono = decoder.decode(item[1].data)
            if mono is not None:
                probe.decoded.add(time.time(), mono)
                # aiortc maps the frame's RTP timestamp to one counted from the first
                probe.decoded_pts.append(int(item[1].timestamp))
        put(item, *args, **kwargs)

    tap.put = timed_put
    return done


def install_probes() -> None:
    """Swap the bench's stamping subclasses into the stage module (this process only)."""
    stage_module.JitterBuffer = _TimedJitter  # type: ignore[misc]
    stage_module.EncodedMixTrack = _TimedMixMinus  # type: ignore[misc]
    stage_module.bypass_receive_buffer = _timed_bypass
    stage_module.tap_decoded_frames = _timed_tap


def probe_report(sender: str, receiver: str) -> dict[str, Any]:
    """Marker onset times at each point: the sender's path in, the receiver's mix-minus out.

    A marker's RTP arrival is the arrival of the packet whose decoded frame holds its first
    sample (aiortc stamps decoded frames with the RTP timestamp less the first one), plus
    the marker's offset in that frame.
    """
    a = PROBES.get(sender, Probe())
    b = PROBES.get(receiver, Probe())
    arrivals: list[float | None] = []
    if a.decoded.chunks:
        x = np.concatenate(a.decoded.chunks)
        starts = np.cumsum([0, *(c.size for c in a.decoded.chunks)])
        for j in find_onsets(x):
            k = int(np.searchsorted(starts, j, side="right") - 1)
            at = a.rtp.get(a.decoded_pts[k] % 2**32)
            arrivals.append(None if at is None else at + (j - starts[k]) / RATE)
    return {
        "rtp_arrival": arrivals,
        "decoded": a.decoded.onset_times(),
        "pulled": a.pulled.onset_times(),
        "pushed": b.pushed.onset_times(),
        "handed": b.handed.onset_times(),
    }


# --- plain HLS derived from the LL stream -------------------------------------------------


@dataclass
class _PlainSegment:
    msn: int
    pdt: float
    duration: float
    data: bytes


class DerivedPlain:
    """3.072 s segments cut from the LL stream: 9 consecutive parts, listed once complete."""

    def __init__(self, ll: Broadcast, init: bytes) -> None:
        self._ll = ll
        self.init = init
        self._seen: tuple[int, int] | None = None
        self._pending: list[tuple[float, float, bytes]] = []  # (pdt, duration, bytes)
        self._segments: list[_PlainSegment] = []
        self._next = 0

    def update(self) -> None:
        last = self._ll.last_part
        if last is None or last == self._seen:
            return
        for part in parse_playlist(self._ll.playlist()).parts():
            key = (part.msn, part.index)
            if self._seen is not None and key <= self._seen:
                continue
            data = self._ll.part_bytes(part.msn, part.index)
            if data is None:
                raise RuntimeError(f"part {key} listed but not served")
            self._pending.append((part.pdt, part.duration, data))
            self._seen = key
            if len(self._pending) == PLAIN_PARTS:
                pdt = self._pending[0][0]
                duration = sum(d for _, d, _ in self._pending)
                data = b"".join(b for _, _, b in self._pending)
                self._segments.append(_PlainSegment(self._next, pdt, duration, data))
                self._segments = self._segments[-(PLAIN_WINDOW + 3) :]
                self._next += 1
                self._pending = []

    def playlist(self) -> str:
        from tribune.broadcast.playlist import format_pdt

        listed = self._segments[-PLAIN_WINDOW:]
        first = listed[0].msn if listed else self._next
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{round(PLAIN_PARTS * 1024 * 16 / RATE)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            '#EXT-X-MAP:URI="init.mp4"',
        ]
        for seg in listed:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_pdt(seg.pdt)}")
            lines.append(f"#EXTINF:{seg.duration:.5f},")
            lines.append(f"seg{seg.msn}.m4s")
        return "\n".join(lines) + "\n"

    def segment_bytes(self, msn: int) -> bytes | None:
        for seg in self._segments:
            if seg.msn == msn:
                return seg.data
        return None


def plain_broadcast_supported() -> bool:
    params = inspect.signature(Broadcast.__init__).parameters
    return "parts_per_segment" in params and "low_latency" in params


# --- the app ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    stage: Stage
    ll: Broadcast
    plain_broadcast: Broadcast | None
    derived: DerivedPlain | None
    ticks: int = 0
    push_s: float = 0.0


def build_app(directory: Path, *, plain_mode: str) -> Starlette:
    state: dict[str, Pipeline] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        ll = Broadcast(directory / "ll")
        plain: Broadcast | None = None
        derived: DerivedPlain | None = None
        if plain_mode == "broadcast":
            plain = Broadcast(
                directory / "plain",
                parts_per_segment=PLAIN_PARTS,
                low_latency=False,
            )
        else:
            derived = DerivedPlain(ll, ll.init_bytes())

        def on_program(pcm: Any, wallclock: float) -> None:
            started = time.perf_counter()
            ll.push(pcm, wallclock)
            if plain is not None:
                plain.push(pcm, wallclock)
            if derived is not None:
                derived.update()
            pipe.ticks += 1
            pipe.push_s += time.perf_counter() - started

        stage = Stage("bench", on_program)
        pipe = Pipeline(stage, ll, plain, derived)
        state["pipe"] = pipe
        await stage.start()
        try:
            yield
        finally:
            await stage.close()
            await ll.close()
            if plain is not None:
                await plain.close()

    def pipe() -> Pipeline:
        return state["pipe"]

    async def health(_: Request) -> Response:
        p = pipe()
        return JSONResponse(
            {
                "plain": plain_mode,
                "ticks": p.ticks,
                "push_ms": 1000 * p.push_s / max(p.ticks, 1),
                "sessions": p.stage.sessions(),
            }
        )

    async def whip(request: Request) -> Response:
        user = request.query_params.get("user", "speaker")
        token = _user.set(user)
        try:
            session_id, answer = await pipe().stage.publish(user, (await request.body()).decode())
        except (BadOffer, TooManySessions) as exc:
            return Response(str(exc), status_code=400)
        finally:
            _user.reset(token)
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/whip/{session_id}"},
        )

    async def unpublish(request: Request) -> Response:
        done = await pipe().stage.unpublish(request.path_params["session"])
        return Response(status_code=200 if done else 404)

    async def probe(request: Request) -> Response:
        sender = request.query_params["sender"]
        receiver = request.query_params["receiver"]
        report = await asyncio.to_thread(probe_report, sender, receiver)
        return JSONResponse(report)

    def int_param(request: Request, name: str) -> int | None:
        raw = request.query_params.get(name)
        return int(raw) if raw is not None and raw.isdigit() else None

    async def ll_playlist(request: Request) -> Response:
        ll = pipe().ll
        msn, part = int_param(request, "_HLS_msn"), int_param(request, "_HLS_part")
        if msn is not None:
            try:
                await ll.wait_for(msn, part, BLOCK_S)
            except BadBlockingRequest as exc:
                return Response(str(exc), status_code=400)
        return Response(ll.playlist(), media_type=PLAYLIST)

    async def ll_file(request: Request) -> Response:
        ll = pipe().ll
        name = request.path_params["name"]
        data: bytes | None
        if name == "init.mp4":
            data = ll.init_bytes()
        elif match := _PART.match(name):
            msn, index = int(match.group(1)), int(match.group(2))
            data = ll.part_bytes(msn, index)
            if data is None:
                try:
                    data = await ll.wait_part(msn, index, BLOCK_S)
                except BadBlockingRequest as exc:
                    return Response(str(exc), status_code=400)
        elif match := _SEGMENT.match(name):
            data = ll.segment_bytes(int(match.group(1)))
        else:
            data = None
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type=MP4)

    async def plain_playlist(_: Request) -> Response:
        p = pipe()
        if p.plain_broadcast is not None:
            return Response(p.plain_broadcast.playlist(), media_type=PLAYLIST)
        assert p.derived is not None
        return Response(p.derived.playlist(), media_type=PLAYLIST)

    async def plain_file(request: Request) -> Response:
        p = pipe()
        name = request.path_params["name"]
        data: bytes | None = None
        if name == "init.mp4":
            data = (p.plain_broadcast or p.ll).init_bytes()
        elif match := _SEGMENT.match(name):
            msn = int(match.group(1))
            if p.plain_broadcast is not None:
                data = p.plain_broadcast.segment_bytes(msn)
            else:
                assert p.derived is not None
                data = p.derived.segment_bytes(msn)
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type=MP4)

    routes = [
        Route("/health", health),
        Route("/whip", whip, methods=["POST"]),
        Route("/whip/{session}", unpublish, methods=["DELETE"]),
        Route("/probe", probe),
        Route("/ll/live.m3u8", ll_playlist),
        Route("/ll/{name}", ll_file),
        Route("/plain/live.m3u8", plain_playlist),
        Route("/plain/{name}", plain_file),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="latency benchmark media server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--plain", choices=["auto", "broadcast", "derived"], default="auto")
    args = parser.parse_args(argv)
    mode = args.plain
    if mode == "auto":
        mode = "broadcast" if plain_broadcast_supported() else "derived"
    install_probes()
    print(json.dumps({"plain": mode}), flush=True)
    uvicorn.run(
        build_app(args.dir, plain_mode=mode),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
