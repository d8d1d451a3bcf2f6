"""Latency benchmark helpers: aiortc speakers that send timed markers, and listen back."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Callable

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from _latency_hls import FRAME, RATE, TimedStream, marker

TIME_BASE = fractions.Fraction(1, RATE)


class MarkerTrack(MediaStreamTrack):
    """A microphone in real time: silence (or a quiet tone) with a marker every ``every_s``.

    With ``speaking``, the tone is sent only while ``speaking()`` is true (digital silence
    otherwise, as a browser sends for a disabled microphone track).

    Frames are 20 ms, paced against the monotonic clock from the first ``recv``. A marker
    starts on a frame boundary, so its first sample is the first sample of the frame that
    carries it; ``sent`` holds ``time.time()`` at the moment that frame is handed to
    aiortc (returned from ``recv``), i.e. when the sender starts encoding it.
    """

    kind = "audio"

    def __init__(
        self,
        every_s: float | None = 2.5,
        *,
        first_after_s: float = 1.0,
        tone_hz: float = 0.0,
        tone_amplitude: float = 0.0,
        speaking: Callable[[], bool] | None = None,
        noise_dbfs: float | None = None,
    ) -> None:
        super().__init__()
        self.sent: list[float] = []
        # white noise under everything (e.g. -50 dBFS): makes an encoder spend its bitrate
        # as on real programme, where digital silence would code to almost nothing
        self._noise = None if noise_dbfs is None else 10 ** (noise_dbfs / 20) * np.sqrt(3)
        self._rng = np.random.default_rng(7)
        self._every = None if every_s is None else round(every_s * RATE / FRAME)
        self._first = round(first_after_s * RATE / FRAME)
        self._marker = marker()
        self._tone_hz = tone_hz
        self._tone_amplitude = tone_amplitude
        self._speaking = speaking
        self._start: float | None = None
        self._index = 0
        self._pending: np.ndarray | None = None

    def quiet(self) -> None:
        """No more markers (so none is cut off when the connection closes)."""
        self._every = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._index * FRAME / RATE
            if due > now:
                await asyncio.sleep(due - now)
        pcm = np.zeros(FRAME, np.float32)
        if self._noise is not None:
            pcm += self._rng.uniform(-self._noise, self._noise, FRAME).astype(np.float32)
        if self._tone_amplitude and (self._speaking is None or self._speaking()):
            t = (np.arange(FRAME) + self._index * FRAME) / RATE
            pcm += (self._tone_amplitude * np.sin(2 * np.pi * self._tone_hz * t)).astype(np.float32)
        start_marker = (
            self._every is not None
            and self._index >= self._first
            and (self._index - self._first) % self._every == 0
        )
        if start_marker:
            self._pending = self._marker
        if self._pending is not None:
            n = min(FRAME, self._pending.size)
            pcm[:n] += self._pending[:n]
            self._pending = self._pending[n:] if self._pending.size > n else None
        frame = av.AudioFrame.from_ndarray(
            np.round(np.clip(pcm, -1, 1) * 32767).astype(np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = RATE
        frame.pts = self._index * FRAME
        frame.time_base = TIME_BASE
        self._index += 1
        if start_marker:
            self.sent.append(time.time())
        return frame


class DtxTrack(MediaStreamTrack):
    """A ``MarkerTrack`` encoded here (libopus, mono 32 kbit/s, as a browser sends a
    microphone) and handed to aiortc as packets, so that with ``dtx()`` true it can do on the
    wire what a browser does when the answer says ``usedtx=1``: while the voice is silent,
    one packet every 400 ms and nothing in between.

    aiortc's encoder has no DTX, and FFmpeg's libopus wrapper does not switch libopus's on,
    so silence is told the way the encoder shows it: digital silence encodes to packets of
    at most 3 bytes; after 10 of those (200 ms, the hangover WebRTC's Opus DTX also keeps)
    the track goes quiet until the voice comes back.
    """

    kind = "audio"
    SILENT_BYTES = 3
    HANGOVER = 10
    KEEPALIVE = 20  # 400 ms

    def __init__(self, source: MarkerTrack, dtx: Callable[[], bool]) -> None:
        super().__init__()
        self._source = source
        self._dtx = dtx
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = 32_000
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec
        self._silent_run = 0
        self.sent = 0
        self.held = 0

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while True:
            frame = await self._source.recv()
            packets = self._codec.encode(frame)
            if not packets:
                continue
            payload = bytes(packets[0])
            self._silent_run = self._silent_run + 1 if len(payload) <= self.SILENT_BYTES else 0
            quiet = self._silent_run - self.HANGOVER
            if self._dtx() and quiet > 0 and quiet % self.KEEPALIVE:
                self.held += 1
                continue
            packet = av.Packet(payload)
            packet.pts = frame.pts
            packet.time_base = TIME_BASE
            self.sent += 1
            return packet

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class Peer:
    """One speaker's aiortc peer connection, published with WHIP."""

    def __init__(self, track: MediaStreamTrack, *, sendrecv: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = track
        self.heard = TimedStream()
        self.frames_heard = 0
        self._keep = False
        self._readers: list[asyncio.Task[None]] = []
        self.pc.addTransceiver(track, direction="sendrecv" if sendrecv else "sendonly")
        self.pc.on("track", self._on_track)
        self.location: str | None = None

    def keep_audio(self, keep: bool = True) -> None:
        """Record what this peer hears (otherwise it is read and dropped, like a speaker)."""
        self._keep = keep

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                at = time.time()
                self.frames_heard += 1
                if self._keep:
                    assert isinstance(frame, av.AudioFrame)
                    data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                    self.heard.add(at, data.mean(axis=1).astype(np.float32) / 32768.0)

    async def publish(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
    ) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        resp = await client.post(
            url,
            content=self.pc.localDescription.sdp.encode(),
            headers={**(headers or {}), "Content-Type": "application/sdp"},
        )
        if resp.status_code != 201:
            raise RuntimeError(f"WHIP POST {url} answered {resp.status_code}: {resp.text[:300]}")
        self.location = resp.headers.get("location")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=resp.text, type="answer"))
        shorten_client_buffer(self.pc)

    async def connected(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise RuntimeError(f"peer did not connect: {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def shorten_client_buffer(pc: RTCPeerConnection) -> None:
    """Give the listening side the receive buffer the server gives itself (1 packet, not 4).

    aiortc holds 4 packets (80 ms) before decoding; a browser's adaptive buffer on a
    loopback link holds far less. Tribune's stage shortens its own receivers the same way.
    """
    from tribune.stage.tracks import shorten_receive_buffer

    for transceiver in pc.getTransceivers():
        shorten_receive_buffer(transceiver.receiver)
