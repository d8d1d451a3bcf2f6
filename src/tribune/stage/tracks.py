"""Audio across the WebRTC boundary: decoded frames in, mix-minus frames out."""

from __future__ import annotations

import asyncio
import fractions
from collections import deque

import av
import numpy as np
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer as RtpJitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tribune.stage.mixer import RATE, Samples

TIME_BASE = fractions.Fraction(1, RATE)
_FULL_SCALE = {"s16": 32768.0, "s16p": 32768.0, "flt": 1.0, "fltp": 1.0}  # read directly


# aiortc's audio receiver holds 4 packets (80 ms) before decoding (JitterBuffer prefetch=4,
# not configurable). The stage has its own per-speaker jitter buffer, so the two in series
# only add delay: holding one packet instead takes 60 ms off speaker-to-speaker latency.
# Packet order, gaps and bursts are handled the same either way; prefetch only adds a
# fixed delay.
_AIORTC_BUFFER = "_RTCRtpReceiver__jitter_buffer"


def shorten_receive_buffer(receiver: RTCRtpReceiver) -> bool:
    """Make aiortc hand each audio packet to the decoder as soon as the next one arrives.

    Reaches into aiortc's private state, so it checks what it finds and reports whether it
    worked (a test fails if an aiortc upgrade moves it).
    """
    current = getattr(receiver, _AIORTC_BUFFER, None)
    if not isinstance(current, RtpJitterBuffer) or current.capacity != 16:
        return False
    setattr(receiver, _AIORTC_BUFFER, RtpJitterBuffer(capacity=current.capacity, prefetch=1))
    return True


class Downmixer:
    """Turns a decoded frame into 48 kHz mono float32.

    aiortc's Opus decoder yields 48 kHz s16 stereo; that is averaged in numpy (a mono Opus
    stream decodes to two equal channels, so averaging keeps its level). Other rates go
    through ``av.AudioResampler`` first.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None

    def __call__(self, frame: av.AudioFrame) -> Samples:
        if (
            self._resampler is None
            and frame.sample_rate == RATE
            and frame.format.name in _FULL_SCALE
        ):
            return _mono(frame)
        if self._resampler is None:
            layout = "mono" if len(frame.layout.channels) == 1 else "stereo"
            self._resampler = av.AudioResampler(format="flt", layout=layout, rate=RATE)
        parts = [_mono(f) for f in self._resampler.resample(frame)]
        if not parts:
            return np.zeros(0, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _mono(frame: av.AudioFrame) -> Samples:
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    # packed: (1, samples * channels) interleaved; planar: (channels, samples)
    samples = data.T if frame.format.is_planar else data.reshape(-1, channels)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    return (mono / np.float32(_FULL_SCALE[frame.format.name])).astype(np.float32, copy=False)


class MixMinusTrack(MediaStreamTrack):
    """What one speaker hears: everyone but them, 20 ms s16 mono frames paced by the mixer.

    The mixer ``push``es a tick; aiortc's sender ``recv``s it. If the sender falls behind
    (a slow peer) the oldest frames go, so what the speaker hears stays current.
    """

    kind = "audio"

    def __init__(self, depth: int = 3) -> None:
        super().__init__()
        self._frames: deque[Samples] = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self._pts = 0
        self._started = False
        self.dropped = 0

    def push(self, pcm: Samples) -> None:
        if self.readyState != "live":
            return
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(pcm)
        self._ready.set()

    async def recv(self) -> av.AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if not self._started:
            # Frames mixed while the connection was being set up are stale: start from now.
            self._started = True
            while len(self._frames) > 1:
                self._frames.popleft()
        pcm = self._frames.popleft()
        pcm16 = np.round(pcm * 32767.0).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm16.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += pcm.size
        return frame

    def stop(self) -> None:
        super().stop()
        self._frames.clear()
        self._ready.set()
