"""Audio across the WebRTC boundary: Opus packets in, Opus packets out.

aiortc's own media path costs a Space of 13 speakers about half a core, most of it not in
the codecs: every received packet is decoded on a thread of its own per speaker and handed
back to the event loop with ``run_coroutine_threadsafe``, and every outgoing frame is
encoded on the default executor (a thread hop and a GIL hand-over per 20 ms per speaker,
with a stereo 96 kbit/s encoder for a mono voice). The stage instead takes the Opus frames
as aiortc reassembles them (``tap_decoded_frames``), decodes them itself in its mixing tick,
and gives aiortc already-encoded packets to send (``EncodedMixTrack``; aiortc packs
``av.Packet``s as they are). One encode can then serve every speaker who hears the same mix.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer as RtpJitterBuffer
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from tribune.stage.mixer import RATE, Samples

logger = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, RATE)
FRAME_SAMPLES = 960  # 20 ms, the packet time WebRTC uses for Opus
#: Mix-minus to speakers: mono voice. 32 kbit/s is past the point where Opus speech stops
#: improving audibly; restricted low delay (CELT only) has 2.5 ms look-ahead instead of 6.5.
MIX_MINUS_BITRATE = 32_000
MIX_MINUS_APPLICATION = "lowdelay"
#: libopus complexity 5 of 10: ~25 % less CPU than 10 for the same bitrate; at 32 kbit/s
#: the difference in speech quality is below what listening tests resolve. Mobile WebRTC
#: stacks make the same trade.
MIX_MINUS_COMPLEXITY = 5
_FULL_SCALE = {"s16": 32768.0, "s16p": 32768.0, "flt": 1.0, "fltp": 1.0}


# aiortc's audio receiver holds 4 packets (80 ms) before decoding (JitterBuffer prefetch=4,
# not configurable). The stage has its own per-speaker jitter buffer, so the two in series
# only add delay: holding one packet instead takes 60 ms off speaker-to-speaker latency.
# Packet order, gaps and bursts are handled the same either way; prefetch only adds a
# fixed delay.
_AIORTC_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_AIORTC_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


def shorten_receive_buffer(receiver: RTCRtpReceiver) -> bool:
    """Make aiortc hand each audio packet on as soon as the next one arrives.

    Reaches into aiortc's private state, so it checks what it finds and reports whether it
    worked (a test fails if an aiortc upgrade moves it).
    """
    current = getattr(receiver, _AIORTC_BUFFER, None)
    if not isinstance(current, RtpJitterBuffer) or current.capacity != 16:
        return False
    setattr(receiver, _AIORTC_BUFFER, RtpJitterBuffer(capacity=current.capacity, prefetch=1))
    return True


class _Arrived(JitterFrame):
    """One packet's Opus frame, with its RTP sequence number for the stage's reordering."""

    def __init__(self, data: bytes, timestamp: int, sequence_number: int) -> None:
        super().__init__(data, timestamp)
        self.sequence_number = sequence_number


class _PassThrough:
    """Stands in for aiortc's receive buffer: each packet is a frame as soon as it arrives.

    aiortc's buffer knows an audio frame is complete only when the next packet arrives, so
    even holding one packet it adds 20 ms. The stage orders frames by sequence number
    itself, at each tick (``InOrder``), and its own jitter buffer absorbs the jitter.
    """

    capacity = 1

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        data: bytes = getattr(packet, "_data", packet.payload)  # aiortc's depayloaded bytes
        return False, _Arrived(data, packet.timestamp, packet.sequence_number)


def bypass_receive_buffer(receiver: RTCRtpReceiver) -> bool:
    """Hand each audio packet on as it arrives (see ``_PassThrough``). Private state of
    aiortc's: checked, reported and tested like ``shorten_receive_buffer``."""
    current = getattr(receiver, _AIORTC_BUFFER, None)
    if not isinstance(current, RtpJitterBuffer) or current.capacity != 16:
        return False
    setattr(receiver, _AIORTC_BUFFER, _PassThrough())
    return True


class InOrder:
    """Puts one speaker's frames of a tick in RTP sequence order, across wrap-around, and
    drops duplicates and frames older than one already decoded (they came too late)."""

    def __init__(self) -> None:
        self._last: int | None = None
        self.late = 0

    def __call__(self, frames: list[tuple[int | None, bytes]]) -> list[bytes]:
        if any(seq is None for seq, _ in frames):  # aiortc's own buffer: already in order
            return [data for _, data in frames]
        ref = self._last if self._last is not None else frames[0][0]
        assert ref is not None
        keyed: dict[int, bytes] = {}
        for seq, data in frames:
            assert seq is not None
            delta = (seq - ref + 0x8000) % 0x10000 - 0x8000
            if self._last is not None and delta <= 0:
                self.late += 1
                continue
            keyed.setdefault(delta, data)
        if not keyed:
            return []
        order = sorted(keyed)
        self._last = (ref + order[-1]) % 0x10000
        return [keyed[d] for d in order]


class _Tap(queue.Queue[Any]):
    """Stands in for aiortc's decoder queue: complete encoded frames go to ``on_frame`` on
    the event loop instead of to aiortc's decoder thread; the ``None`` that tells that
    thread to stop still reaches it (on whichever queue it was given), so it ends."""

    def __init__(self, original: queue.Queue[Any], on_frame: FrameSink) -> None:
        super().__init__()
        self._original = original
        self._on_frame = on_frame

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._original.put(None)
            super().put(None)
            return
        _codec, frame = item
        if isinstance(frame, _Arrived):
            self._on_frame((frame.sequence_number, frame.data))
        elif isinstance(frame, JitterFrame):
            self._on_frame((None, frame.data))


FrameSink = Callable[[tuple[int | None, bytes]], None]


def tap_decoded_frames(receiver: RTCRtpReceiver, on_frame: FrameSink) -> bool:
    """Send the receiver's Opus frames, as ``(sequence number or None, bytes)``, to
    ``on_frame`` instead of aiortc's decoder thread. Private state again: checked, reported,
    and tested like ``shorten_receive_buffer``."""
    original = getattr(receiver, _AIORTC_DECODER_QUEUE, None)
    if type(original) is not queue.Queue:
        return False
    setattr(receiver, _AIORTC_DECODER_QUEUE, _Tap(original, on_frame))
    return True


class OpusDecoder:
    """One speaker's Opus stream to float32 mono 48 kHz.

    libopus decodes a stereo stream to mono as (L + R) / 2, so a voice in both channels
    keeps its level, and a mono stream (what browsers send by default) costs a mono decode.
    """

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.layout = "mono"
        self._codec.sample_rate = RATE
        self.errors = 0

    def decode(self, payload: bytes) -> Samples | None:
        if not payload:  # an empty packet would put FFmpeg's decoder into draining mode
            self.errors += 1
            return None
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.FFmpegError:
            # Keep the state: a reset decoder would garble the next frames too.
            self.errors += 1
            return None
        parts = [_mono(f) for f in frames if isinstance(f, av.AudioFrame)]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _mono(frame: av.AudioFrame) -> Samples:
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    if channels == 1 and frame.format.name == "s16":  # what the decoder gives: the fast way
        return data.reshape(-1).astype(np.float32) * np.float32(1 / 32768)
    # packed: (1, samples * channels) interleaved; planar: (channels, samples)
    samples = data.T if frame.format.is_planar else data.reshape(-1, channels)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    return (mono / np.float32(_FULL_SCALE[frame.format.name])).astype(np.float32, copy=False)


class OpusEncoder:
    """Float32 mono frames of ``frame_samples`` (10, 20, 40 or 60 ms) to Opus packets."""

    def __init__(
        self,
        frame_samples: int = FRAME_SAMPLES,
        *,
        bitrate: int = MIX_MINUS_BITRATE,
        application: str = MIX_MINUS_APPLICATION,
    ) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = bitrate
        codec.format = "flt"
        codec.layout = "mono"
        codec.sample_rate = RATE
        codec.time_base = TIME_BASE
        codec.options = {
            "application": application,
            "compression_level": str(MIX_MINUS_COMPLEXITY),
            "frame_duration": str(frame_samples * 1000 // RATE),
        }
        self.frame_samples = frame_samples
        self._codec = codec
        self._pts = 0

    def encode(self, pcm: Samples) -> list[bytes]:
        if pcm.shape != (self.frame_samples,):
            raise ValueError(f"need {self.frame_samples} samples, got {pcm.shape}")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += self.frame_samples
        return [bytes(p) for p in self._codec.encode(frame)]


class OutgoingPacket(bytes):
    """An encoded packet as aiortc's sender reads one (``bytes(p)``, ``p.pts``,
    ``p.time_base``): a bytes subclass, a fraction of the cost of an ``av.Packet``."""

    pts: int
    time_base: fractions.Fraction = TIME_BASE


class EncodedMixTrack(MediaStreamTrack):
    """What one speaker hears, as Opus packets the mixer ``push``es every tick.

    aiortc's sender ``recv``s packets and sends them as they are (no encode on its side).
    If the sender falls behind (a slow peer) the oldest packets go, so what the speaker
    hears stays current; RTP timestamps still advance one frame a packet.
    """

    kind = "audio"

    def __init__(self, frame_samples: int = FRAME_SAMPLES, depth: int = 3) -> None:
        super().__init__()
        self.frame_samples = frame_samples
        self._packets: deque[bytes] = deque(maxlen=depth)
        self._ready = asyncio.Event()
        self._pts = 0
        self._started = False
        self.dropped = 0

    def push(self, payload: bytes) -> None:
        if self.readyState != "live":
            return
        if len(self._packets) == self._packets.maxlen:
            self.dropped += 1
        self._packets.append(payload)
        self._ready.set()

    async def recv(self) -> Any:  # an OutgoingPacket, which aiortc takes for an av.Packet
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if not self._started:
            # Packets mixed while the connection was being set up are stale: start from now.
            self._started = True
            while len(self._packets) > 1:
                self._packets.popleft()
        packet = OutgoingPacket(self._packets.popleft())
        packet.pts = self._pts
        self._pts += self.frame_samples
        return packet

    def stop(self) -> None:
        super().stop()
        self._packets.clear()
        self._ready.set()
