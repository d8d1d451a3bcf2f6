"""Independent clients for the broadcast tests: a playlist parser, ffmpeg/ffprobe, an FFT.

Nothing here imports ``tribune.broadcast``: what the tests check is what a player would see.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 48_000
TICK = 960
#: the synthetic wall-clock time of the first pushed sample
T0 = 1_700_000_000.0

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


@dataclass
class PartLine:
    uri: str
    duration: float
    independent: bool


@dataclass
class SegmentLine:
    msn: int
    uri: str
    duration: float
    program_date_time: float | None
    parts: list[PartLine] = field(default_factory=list)
    byterange: tuple[int, int] | None = None


@dataclass
class Playlist:
    tags: dict[str, str]
    segments: list[SegmentLine]
    #: parts after the last complete segment (the segment being filled)
    open_parts: list[PartLine]
    open_pdt: float | None
    preload_hint: dict[str, str] | None
    ended: bool


def parse_pdt(text: str) -> float:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_playlist(text: str) -> Playlist:
    """Parse a media playlist the way a player would, asserting it is well-formed."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    tags: dict[str, str] = {}
    segments: list[SegmentLine] = []
    parts: list[PartLine] = []
    pdt: float | None = None
    duration: float | None = None
    byterange: tuple[int, int] | None = None
    hint = None
    ended = False
    for line in lines[1:]:
        if not line.startswith("#"):
            assert duration is not None, f"{line} without #EXTINF"
            msn = int(tags["EXT-X-MEDIA-SEQUENCE"]) + len(segments)
            segments.append(SegmentLine(msn, line, duration, pdt, parts, byterange))
            parts, pdt, duration, byterange = [], None, None, None
            continue
        name, _, value = line[1:].partition(":")
        if name == "EXTINF":
            duration = float(value.split(",")[0])
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            pdt = parse_pdt(value)
        elif name == "EXT-X-PART":
            a = attributes(value)
            parts.append(PartLine(a["URI"], float(a["DURATION"]), a.get("INDEPENDENT") == "YES"))
        elif name == "EXT-X-BYTERANGE":
            length, offset = value.split("@")
            byterange = (int(length), int(offset))
        elif name == "EXT-X-PRELOAD-HINT":
            hint = attributes(value)
        elif name == "EXT-X-ENDLIST":
            ended = True
        else:
            assert name not in tags, f"{name} twice"
            tags[name] = value
    return Playlist(tags, segments, parts, pdt, hint, ended)


def run(*args: str | Path, timeout: float = 30) -> bytes:
    """Run a command; a live playlist can make ffmpeg wait for ever, so always bound it."""
    done = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def decode(
    source: Path, *input_options: str, limit: float | None = None
) -> npt.NDArray[np.float32]:
    """Decode ``source`` with ffmpeg to 48 kHz mono float samples."""
    args: list[str | Path] = ["ffmpeg", "-v", "error", *input_options, "-i", source]
    if limit is not None:
        args += ["-t", f"{limit:.3f}"]
    out = run(*args, "-f", "f32le", "-ac", "1", "-ar", str(RATE), "-")
    return np.frombuffer(out, dtype=np.float32)


def media_extent(path: Path) -> tuple[float, float]:
    """``(first pts, end of last packet)`` in seconds, as ffprobe reads the file's packets.

    ffprobe leaves the first AAC packet's duration out (N/A), and every Opus packet's, so
    the extent is taken from the timestamps (which also checks ``tfdt``), with the last
    packet lasting as long as its predecessor when its own duration is not given.
    """
    out = run(
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path,
    )  # fmt: skip
    rows = [line.split(",") for line in out.decode().split()]
    pts = [float(r[0]) for r in rows]
    if rows[-1][1] != "N/A":
        last = float(rows[-1][1])
    else:
        assert len(pts) > 1, "one packet and no duration: cannot tell how long it is"
        last = pts[-1] - pts[-2]
    return pts[0], pts[-1] + last


def probe(path: Path) -> dict[str, str]:
    """ffprobe's stream and format fields for the first audio stream, flattened."""
    out = run(
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels,duration:format=duration,format_name",
        "-of", "default=nw=1", path,
    )  # fmt: skip
    fields: dict[str, str] = {}
    for line in out.decode().splitlines():
        key, _, value = line.partition("=")
        fields.setdefault(key, value)
    return fields


def dominant_hz(samples: npt.NDArray[np.float32], start_s: float, end_s: float) -> float:
    """The strongest frequency in ``samples[start_s:end_s]`` (Hann window, 1 Hz bins or finer)."""
    chunk = samples[int(start_s * RATE) : int(end_s * RATE)]
    assert len(chunk) >= RATE // 2, "window too short for a clear peak"
    spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
    return float(np.argmax(spectrum) * RATE / len(chunk))


def rms(samples: npt.NDArray[np.float32], start_s: float, end_s: float) -> float:
    chunk = samples[int(start_s * RATE) : int(end_s * RATE)]
    return float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))


def tone(hz: float, seconds: float, amplitude: float = 0.5) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def program() -> npt.NDArray[np.float32]:
    """8 s of 440 Hz, 1 s of silence, 3 s of 660 Hz: the test Space's program audio."""
    return np.concatenate([tone(440, 8), np.zeros(RATE, np.float32), tone(660, 3)])


def ticks(
    samples: npt.NDArray[np.float32], first: int = 0
) -> list[tuple[npt.NDArray[np.float32], float]]:
    """Cut samples into 20 ms ticks with synthetic wall-clock stamps (tick ``first`` on)."""
    count = len(samples) // TICK
    return [
        (samples[i * TICK : (i + 1) * TICK], T0 + (first + i) * TICK / RATE) for i in range(count)
    ]


def silence_start(samples: npt.NDArray[np.float32], after_s: float) -> float:
    """Seconds at which the signal first falls silent (5 ms envelope) after ``after_s``."""
    window = RATE // 200
    start = int(after_s * RATE)
    env = np.sqrt(
        np.convolve(samples[start:].astype(np.float64) ** 2, np.ones(window) / window, "valid")
    )
    quiet = np.flatnonzero(env < 0.05)
    assert len(quiet), "no silence found"
    return (start + int(quiet[0])) / RATE


def top_level_boxes(data: bytes) -> list[str]:
    """Box types at the top of an ISO-BMFF file (a tiny reader of our own, for the tests)."""
    types = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        types.append(data[pos + 4 : pos + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        assert size >= 8, f"bad box size at {pos}"
        pos += size
    assert pos == len(data), "trailing bytes"
    return types
