"""Audio test tools: tone-sending WebRTC peers that publish over WHIP, and analysis."""

from __future__ import annotations

import asyncio
import fractions
import re
import subprocess
import time
from datetime import datetime
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

RATE = 48_000
FRAME = 960


class ToneTrack(MediaStreamTrack):
    """A microphone that hums a sine, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._samples / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (self._samples + np.arange(FRAME)) / RATE
        pcm = (self.amplitude * np.sin(2 * np.pi * self.freq * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, RATE)
        self._samples += FRAME
        return frame


class Publisher:
    """One speaker: an aiortc peer connection published with WHIP."""

    def __init__(self, pc: RTCPeerConnection, location: str, received: list[MediaStreamTrack]):
        self.pc = pc
        self.location = location
        self.received = received

    async def close(self) -> None:
        await self.pc.close()


async def make_offer(freq: float, sendrecv: bool) -> tuple[RTCPeerConnection, list[Any]]:
    pc = RTCPeerConnection()
    received: list[Any] = []
    pc.on("track", received.append)
    pc.addTransceiver(ToneTrack(freq), direction="sendrecv" if sendrecv else "sendonly")
    # aiortc gathers every candidate inside setLocalDescription: the offer is complete.
    await pc.setLocalDescription(await pc.createOffer())
    return pc, received


async def whip_publish(
    base_url: str, space_id: str, headers: dict[str, str], freq: float, sendrecv: bool = False
) -> Publisher:
    pc, received = await make_offer(freq, sendrecv)
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        r = await client.post(
            f"/api/spaces/{space_id}/whip",
            content=pc.localDescription.sdp.encode(),
            headers={**headers, "Content-Type": "application/sdp"},
        )
    if r.status_code != 201:
        await pc.close()
        raise AssertionError(f"WHIP publish failed: {r.status_code} {r.text}")
    assert r.headers["content-type"].startswith("application/sdp")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return Publisher(pc, r.headers["location"], received)


def tone_share(samples: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Fraction of the signal's energy within ±15 Hz of ``freq``."""
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    total = spectrum.sum()
    if total == 0:
        return 0.0
    return float(spectrum[(freqs > freq - 15) & (freqs < freq + 15)].sum() / total)


def decode(source: str, seconds: float | None = None, extra: list[str] | None = None) -> np.ndarray:
    """Decode with ffmpeg (an independent client) to 48 kHz mono float."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", *(extra or []), "-i", source]
    if seconds is not None:
        cmd += ["-t", str(seconds)]
    cmd += ["-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return np.frombuffer(done.stdout, dtype=np.int16).astype(np.float32) / 32768


_SEG = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)\n#EXTINF:([\d.]+),\n(seg\d+\.m4s)")


def segments_since(playlist: str, since: float) -> list[tuple[str, float, float]]:
    """(uri, start wall-clock, duration) of complete segments starting at or after ``since``."""
    out = []
    for pdt, duration, uri in _SEG.findall(playlist):
        start = datetime.fromisoformat(pdt.replace("Z", "+00:00")).timestamp()
        if start >= since:
            out.append((uri, start, float(duration)))
    return out


async def wait_segments(
    client: httpx.AsyncClient, playlist: str, since: float, seconds: float
) -> list[str]:
    """Poll the live playlist until complete segments made after ``since`` (wall clock)
    add up to ``seconds``; return their URIs."""
    deadline = time.monotonic() + seconds + 15
    while time.monotonic() < deadline:
        segs = segments_since((await client.get(playlist)).text, since)
        if sum(d for _, _, d in segs) >= seconds:
            return [uri for uri, _, _ in segs]
        await asyncio.sleep(0.3)
    raise AssertionError("the live playlist did not advance")


async def listen_live(base_url: str, playlist: str, since: float, seconds: float) -> np.ndarray:
    """ffmpeg on the live playlist, starting at the newest segment once one made after
    ``since`` exists, decoding ``seconds`` of audio."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        await wait_segments(client, playlist, since, 1.0)
    return await asyncio.to_thread(
        decode, base_url + playlist, seconds, ["-live_start_index", "-1"]
    )
