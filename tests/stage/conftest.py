"""Real aiortc peers on loopback standing in for speakers' browsers and WHIP encoders."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tribune.stage import Stage

RATE = 48_000
FRAME = 960
Pcm = npt.NDArray[np.float32]


class ToneTrack(MediaStreamTrack):
    """A microphone: a sine at ``freq`` Hz (0 for silence), 20 ms s16 mono frames in real time.

    ``click()`` puts a 10 ms 1 kHz burst at the start of the next frame and records, in
    ``clicks``, the ``time.time()`` at which that frame went to the encoder.
    """

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self.clicks: list[float] = []
        self._click = False
        self._start: float | None = None
        self._index = 0

    def click(self) -> None:
        self._click = True

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + self._index * FRAME / RATE - time.monotonic())
        t = (np.arange(FRAME) + self._index * FRAME) / RATE
        pcm = self.amplitude * np.sin(2 * np.pi * self.freq * t)
        if self._click:
            self._click = False
            pcm[:480] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(480) / RATE)
            self.clicks.append(time.time())
        frame = av.AudioFrame.from_ndarray(
            np.round(pcm * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._index * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._index += 1
        return frame


class Speaker:
    """An aiortc peer that publishes a track to the stage and records what it hears back."""

    def __init__(self, track: MediaStreamTrack | None, direction: str = "sendrecv") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if track is not None:
            self.pc.addTransceiver(track, direction=direction)
        self.heard: list[tuple[float, Pcm]] = []  # (time.time() when received, mono samples)
        self.tracks: list[MediaStreamTrack] = []
        self.states: list[str] = []
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", lambda: self.states.append(self.pc.connectionState))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tracks.append(track)
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                stereo = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                self.heard.append((time.time(), stereo.mean(axis=1) / 32768.0))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def publish(self, stage: Stage, user_id: str) -> tuple[str, str]:
        session_id, answer = await stage.publish(user_id, await self.offer())
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return session_id, answer

    def heard_since(self, t: float) -> Pcm:
        chunks = [pcm for at, pcm in self.heard if at >= t]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@dataclass
class Program:
    """What ``on_program`` received: one (wallclock, pcm) per tick."""

    ticks: list[tuple[float, Pcm]] = field(default_factory=list)

    def __call__(self, pcm: Pcm, wallclock: float) -> None:
        self.ticks.append((wallclock, pcm.copy()))

    def since(self, t: float) -> Pcm:
        chunks = [pcm for at, pcm in self.ticks if at >= t]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def amplitude(pcm: Pcm, freq: float) -> float:
    """Amplitude of the ``freq`` Hz component of ``pcm`` (Hann-windowed, so neighbours at
    a few tens of Hz do not leak into it)."""
    if pcm.size == 0:
        return 0.0
    window = np.hanning(pcm.size)
    t = np.arange(pcm.size) / RATE
    return float(2 * abs(np.dot(pcm * window, np.exp(-2j * np.pi * freq * t))) / window.sum())


async def until(
    condition: Callable[[], bool], within: float, what: str, step: float = 0.01
) -> float:
    """Wait until ``condition()`` holds; return how long it took. Fails after ``within`` s."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(step)
    return time.monotonic() - start


@pytest.fixture(autouse=True)
async def no_lost_task_errors() -> AsyncIterator[None]:
    """Fail the test if a background task died with an error nobody looked at."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield
    gc.collect()  # "Task exception was never retrieved" is reported when a task is collected
    loop.set_exception_handler(None)
    assert not errors, errors


@pytest.fixture
def program() -> Program:
    return Program()


@pytest.fixture
async def stage(program: Program) -> AsyncIterator[Stage]:
    async with Stage("sp_test", program) as stage:
        yield stage


@pytest.fixture
async def speakers() -> AsyncIterator[Callable[..., Speaker]]:
    """Make client peers; all are closed after the test."""
    made: list[Speaker] = []

    def make(track: MediaStreamTrack | None, direction: str = "sendrecv") -> Speaker:
        made.append(Speaker(track, direction))
        return made[-1]

    yield make
    await asyncio.gather(*(s.close() for s in made))


Connect = Callable[..., Awaitable[Speaker]]


@pytest.fixture
def connected(stage: Stage, speakers: Callable[..., Speaker]) -> Connect:
    """Publish a speaker with a tone to the stage and wait until its connection is up."""

    async def connect(user_id: str, freq: float, direction: str = "sendrecv") -> Speaker:
        speaker = speakers(ToneTrack(freq), direction)
        await speaker.publish(stage, user_id)
        await until(lambda: speaker.pc.connectionState == "connected", 5, f"{user_id} connects")
        return speaker

    return connect
