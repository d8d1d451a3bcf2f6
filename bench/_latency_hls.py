"""Latency benchmark helpers: what a player sees (playlists, fMP4 decoding) and markers.

Nothing here imports ``tribune``: like the tests' HLS client, it reads what any player
would read, so a packaging bug shows up as a wrong number instead of being agreed with.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import av
import numpy as np
import numpy.typing as npt

RATE = 48_000
FRAME = 960  # 20 ms, what aiortc and the stage use
MARKER_HZ = 1000.0
MARKER_S = 0.040
MARKER_AMPLITUDE = 0.5

Pcm = npt.NDArray[np.float32]

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_PART_URI = re.compile(r"part(\d+)\.(\d+)\.m4s$")


def attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


def parse_pdt(text: str) -> float:
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()


# --- playlists ----------------------------------------------------------------------------


@dataclass
class PartRef:
    msn: int
    index: int
    uri: str
    duration: float
    #: EXT-X-PROGRAM-DATE-TIME of its first sample (segment's PDT + the parts before it)
    pdt: float


@dataclass
class SegmentRef:
    msn: int
    uri: str
    duration: float
    pdt: float
    parts: list[PartRef] = field(default_factory=list)


@dataclass
class MediaPlaylist:
    """A live media playlist as a player reads it (LL-HLS tags optional)."""

    target_duration: float
    media_sequence: int
    segments: list[SegmentRef]
    #: parts of the segment being filled (LL-HLS only)
    open_parts: list[PartRef]
    preload_hint: str | None
    server_control: dict[str, str]
    ended: bool

    @property
    def next_msn(self) -> int:
        return self.media_sequence + len(self.segments)

    @property
    def part_hold_back(self) -> float | None:
        raw = self.server_control.get("PART-HOLD-BACK")
        return float(raw) if raw else None

    @property
    def hold_back(self) -> float:
        """HOLD-BACK, or its default: three target durations."""
        raw = self.server_control.get("HOLD-BACK")
        return float(raw) if raw else 3.0 * self.target_duration

    def parts(self) -> list[PartRef]:
        """Every listed part, oldest first."""
        return [p for s in self.segments for p in s.parts] + self.open_parts

    def hint(self) -> tuple[int, int] | None:
        """``(msn, index)`` of the preload-hinted part."""
        if self.preload_hint is None:
            return None
        match = _PART_URI.search(self.preload_hint)
        return (int(match.group(1)), int(match.group(2))) if match else None


def parse_playlist(text: str) -> MediaPlaylist:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#EXTM3U":
        raise ValueError(f"not a playlist: {text[:80]!r}")
    target = 0.0
    sequence = 0
    segments: list[SegmentRef] = []
    group: list[PartRef] = []
    pdt: float | None = None
    extinf: float | None = None
    hint: str | None = None
    control: dict[str, str] = {}
    ended = False
    for raw in lines[1:]:
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            if extinf is None or pdt is None:
                raise ValueError(f"segment {line} without #EXTINF and PROGRAM-DATE-TIME")
            segments.append(SegmentRef(sequence + len(segments), line, extinf, pdt, group))
            pdt = pdt + extinf
            group, extinf = [], None
            continue
        name, _, value = line[1:].partition(":")
        if name == "EXT-X-TARGETDURATION":
            target = float(value)
        elif name == "EXT-X-MEDIA-SEQUENCE":
            sequence = int(value)
        elif name == "EXT-X-SERVER-CONTROL":
            control = attributes(value)
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            pdt = parse_pdt(value)
        elif name == "EXTINF":
            extinf = float(value.split(",")[0])
        elif name == "EXT-X-PART":
            a = attributes(value)
            if pdt is None:
                raise ValueError("EXT-X-PART before any PROGRAM-DATE-TIME")
            msn = sequence + len(segments)
            match = _PART_URI.search(a["URI"])
            index = int(match.group(2)) if match else len(group)
            start = pdt + sum(p.duration for p in group)
            group.append(PartRef(msn, index, a["URI"], float(a["DURATION"]), start))
        elif name == "EXT-X-PRELOAD-HINT":
            hint = attributes(value).get("URI")
        elif name == "EXT-X-ENDLIST":
            ended = True
    return MediaPlaylist(target, sequence, segments, group, hint, control, ended)


# --- decoding -----------------------------------------------------------------------------


@dataclass
class DecodedChunk:
    """One fetched part or segment after decoding: its first media sample and its PCM."""

    pts: int
    pcm: Pcm


class FragmentDecoder:
    """Decodes a stream of fMP4 fragments (parts or segments) with one PyAV decoder.

    Each fragment is demuxed together with the init section (so its ``tfdt`` gives the
    media time), and its packets go to a decoder that lives for the whole stream, as in a
    player's audio pipeline: an AAC frame needs the one before it, so a decoder per part
    would garble the first frame of every part.
    """

    def __init__(self, init: bytes) -> None:
        self._init = init
        self._decoder: av.CodecContext | None = None

    def decode(self, fragment: bytes) -> DecodedChunk:
        with av.open(io.BytesIO(self._init + fragment)) as container:
            stream = container.streams.audio[0]
            if self._decoder is None:
                params = stream.codec_context
                decoder = av.CodecContext.create(params.name, "r")
                if params.extradata:
                    decoder.extradata = params.extradata
                self._decoder = decoder
            first: int | None = None
            pcm: list[Pcm] = []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if first is None and packet.pts is not None:
                    first = int(packet.pts)
                for frame in self._decoder.decode(packet):  # type: ignore[attr-defined]
                    data = frame.to_ndarray().astype(np.float32)
                    if not frame.format.is_planar:
                        data = data.reshape(-1, len(frame.layout.channels)).T
                    pcm.append(data.mean(axis=0).astype(np.float32))
        if first is None:
            raise ValueError("a fragment without audio packets")
        return DecodedChunk(first, np.concatenate(pcm) if pcm else np.zeros(0, np.float32))


# --- markers ------------------------------------------------------------------------------


def marker(samples: int = round(MARKER_S * RATE)) -> Pcm:
    """The marker: a 1 kHz burst with 1 ms raised-cosine edges (no broadband click)."""
    t = np.arange(samples) / RATE
    burst = MARKER_AMPLITUDE * np.sin(2 * np.pi * MARKER_HZ * t)
    ramp = RATE // 1000
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    burst[:ramp] *= edge
    burst[-ramp:] *= edge[::-1]
    return burst.astype(np.float32)


def find_onsets(x: Pcm, *, min_gap_s: float = 0.3, floor: float = 0.1) -> list[int]:
    """Sample indices where 1 kHz bursts start, from the energy at 1 kHz.

    The 1 kHz magnitude is a sliding one-cycle (1 ms, 48-sample) DFT; a burst is a run
    above ``floor`` (in amplitude, the marker is 0.5), and its onset is where the magnitude
    first reaches half the burst's peak, less half a window, which puts a clean burst's
    onset within ±0.1 ms of its first sample.
    """
    w = RATE // 1000
    if x.size <= w:
        return []
    phase = np.exp(-2j * np.pi * MARKER_HZ * np.arange(x.size) / RATE)
    sums = np.concatenate([[0], np.cumsum(x.astype(np.float64) * phase)])
    env = np.abs(sums[w:] - sums[:-w]) * 2 / w  # env[i]: the window x[i : i + w]
    above = np.flatnonzero(env > floor)
    onsets: list[int] = []
    gap = round(min_gap_s * RATE)
    for i in above:
        if onsets and i - onsets[-1] < gap:
            continue
        burst = env[i : i + round(MARKER_S * RATE)]
        half = 0.5 * float(burst.max())
        onsets.append(int(i + np.flatnonzero(burst >= half)[0] + w // 2) - _bias)
    return onsets


def _detector_bias() -> int:
    """How far ``find_onsets`` puts a clean marker's onset from its first sample."""
    x = np.zeros(RATE // 2, np.float32)
    x[1000 : 1000 + round(MARKER_S * RATE)] = marker()
    return find_onsets(x)[0] - 1000


_bias = 0
_bias = _detector_bias()


@dataclass
class TimedStream:
    """Chunks of mono PCM, each stamped with the wall-clock time it passed a point."""

    times: list[float] = field(default_factory=list)
    chunks: list[Pcm] = field(default_factory=list)

    def add(self, at: float, pcm: Pcm) -> None:
        self.times.append(at)
        self.chunks.append(np.asarray(pcm, np.float32).reshape(-1))

    def onset_times(self) -> list[float]:
        """When each marker's first sample passed: its chunk's time plus its offset in it.

        As if each chunk were played from the moment it passed, so two points compare
        like for like whatever their chunk sizes.
        """
        if not self.chunks:
            return []
        x = np.concatenate(self.chunks)
        starts = np.cumsum([0, *(c.size for c in self.chunks)])
        out = []
        for j in find_onsets(x):
            k = int(np.searchsorted(starts, j, side="right") - 1)
            out.append(self.times[k] + (j - starts[k]) / RATE)
        return out


def match(
    sent: Sequence[float], seen: Sequence[float], *, within: float, early: float = 0.005
) -> list[tuple[float, float]]:
    """Pair each send with the first unused sighting in ``[send - early, send + within)``."""
    pairs = []
    seen = sorted(seen)
    used = 0
    for s in sorted(sent):
        while used < len(seen) and seen[used] < s - early:
            used += 1
        if used < len(seen) and seen[used] < s + within:
            pairs.append((s, seen[used]))
            used += 1
    return pairs


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None, "min": None, "mean": None}
    a = np.asarray(values, np.float64)
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "min": float(a.min()),
        "mean": float(a.mean()),
    }
