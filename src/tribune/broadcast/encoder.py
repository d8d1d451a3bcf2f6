"""PCM in, fragmented MP4 out: one PyAV encoder and one mp4 muxer for a whole broadcast.

The muxer writes ``ftyp``+``moov`` up front (``empty_moov``) and then one ``moof``+``mdat``
fragment per part. PyAV cannot ask the muxer to flush a fragment on demand (that needs
``av_write_frame(ctx, NULL)``, which it does not expose), so the cut is left to the muxer's
``frag_duration``: it closes a fragment when the first packet of the next one arrives. We
set the threshold half a frame short of a part so rounding cannot move the cut; the cost is
that a part leaves the muxer one coded frame (21 ms) after its last packet went in.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet

from tribune.broadcast.boxes import Box, iter_boxes, read_moof
from tribune.broadcast.media import SAMPLE_RATE, CodecConfig

logger = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, SAMPLE_RATE)


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof`` + ``mdat`` pair as the muxer wrote it; times in samples."""

    start: int
    duration: int
    frames: int
    data: bytes = field(repr=False)


class _Sink(io.RawIOBase):
    """Collects the muxer's output and hands it back cut on box boundaries."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # Unseekable, so the muxer never goes back to patch what it already wrote.
        return False

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += b
        return len(b)

    def take_header(self) -> bytes:
        """Everything before the first fragment: ``ftyp`` + ``moov``."""
        types = [box.type for box in iter_boxes(self._buffer)]
        if types[:2] != ["ftyp", "moov"]:
            raise RuntimeError(f"muxer wrote {types} instead of an init segment")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def take_fragments(self) -> list[Fragment]:
        """The complete ``moof``+``mdat`` pairs written so far, in order."""
        fragments: list[Fragment] = []
        consumed = 0
        moof = None
        for box in iter_boxes(self._buffer):
            if box.type == "moof":
                moof = box
            elif box.type == "mdat" and moof is not None:
                data = bytes(self._buffer[moof.start : box.end])
                timing = read_moof(data, Box("moof", 0, moof.size))
                fragments.append(
                    Fragment(timing.base_time, timing.duration, timing.sample_count, data)
                )
                moof = None
                consumed = box.end
            elif moof is None:
                # mfra (written by the trailer) and anything else between fragments
                logger.debug("skipping %s box of %d bytes", box.type, box.size)
                consumed = box.end
        del self._buffer[:consumed]
        return fragments


class Encoder:
    """Encode mono 48 kHz float PCM of any chunk size into fMP4 fragments."""

    def __init__(self, codec: CodecConfig) -> None:
        self.codec = codec
        self._sink = _Sink()
        frag_us = round((codec.frames_per_part - 0.5) * codec.frame_size * 1_000_000 / SAMPLE_RATE)
        self._container: OutputContainer = av.open(
            self._sink,
            "w",
            format="mp4",
            options={
                "movflags": "empty_moov+default_base_moof+cmaf",
                "frag_duration": str(frag_us),
            },
        )
        stream = self._container.add_stream(codec.encoder, rate=SAMPLE_RATE)
        assert isinstance(stream, AudioStream)
        self._stream = stream
        stream.layout = "mono"
        stream.bit_rate = codec.bit_rate
        formats = {f.name for f in stream.codec_context.codec.audio_formats or ()}
        self._format = next(f for f in ("fltp", "flt") if f in formats)
        stream.format = self._format
        stream.time_base = _TIME_BASE
        self._container.start_encoding()
        if stream.codec_context.frame_size != codec.frame_size:
            raise RuntimeError(
                f"{codec.encoder} codes {stream.codec_context.frame_size}-sample frames, "
                f"expected {codec.frame_size}"
            )
        #: ``ftyp`` + ``moov``: the media initialization section
        self.init = self._sink.take_header()
        #: samples of encoder priming: media time t holds input sample t - delay
        self.delay: int | None = None
        self._pending = np.zeros(codec.frame_size, dtype=np.float32)
        self._filled = 0
        self._samples_in = 0
        self._finished = False

    def encode(self, pcm: npt.NDArray[np.float32]) -> list[Fragment]:
        """Queue samples; return the fragments that became complete."""
        if self._finished:
            raise RuntimeError("encoder already finished")
        size = self.codec.frame_size
        pos = 0
        while pos < len(pcm):
            if self._filled == 0 and len(pcm) - pos >= size:
                # Whole frames straight from the caller's array (Opus: every tick).
                self._encode_frame(pcm[pos : pos + size])
                pos += size
                continue
            n = min(size - self._filled, len(pcm) - pos)
            self._pending[self._filled : self._filled + n] = pcm[pos : pos + n]
            self._filled += n
            pos += n
            if self._filled == size:
                self._encode_frame(self._pending)
                self._filled = 0
        return self._take()

    def finish(self) -> list[Fragment]:
        """Encode what is buffered (padded with silence to a frame), drain, write the trailer."""
        if self._finished:
            return []
        self._finished = True
        if self._filled:
            self._pending[self._filled :] = 0.0
            self._encode_frame(self._pending)
            self._filled = 0
        for packet in self._stream.encode(None):
            self._mux(packet)
        self._container.close()
        return self._take()

    def _take(self) -> list[Fragment]:
        fragments = self._sink.take_fragments()
        for fragment in fragments:
            if fragment.frames > self.codec.frames_per_part:
                # Still playable, but longer than PART-TARGET promises: a muxer change?
                logger.warning(
                    "muxer cut a %d-frame fragment; parts should be %d",
                    fragment.frames,
                    self.codec.frames_per_part,
                )
        return fragments

    def _encode_frame(self, samples: npt.NDArray[np.float32]) -> None:
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format=self._format, layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = _TIME_BASE
        frame.pts = self._samples_in
        self._samples_in += len(samples)
        for packet in self._stream.encode(frame):
            self._mux(packet)

    def _mux(self, packet: Packet[AudioStream]) -> None:
        if packet.pts is None:
            raise RuntimeError("encoder produced a packet without a timestamp")
        if self.delay is None:
            # AAC and Opus both start with priming samples stamped before zero; shift them so
            # the track starts at 0 without an edit list (players honour edit lists unevenly
            # in fragmented MP4), and remember the shift to map media time to wall-clock.
            self.delay = -packet.pts
            logger.debug("%s encoder delay: %d samples", self.codec.encoder, self.delay)
        packet.pts = packet.dts = packet.pts + self.delay
        if not packet.duration:
            packet.duration = self.codec.frame_size
        self._container.mux(packet)
