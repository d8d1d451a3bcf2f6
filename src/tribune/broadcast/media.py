"""The units the broadcast is made of: codec settings, parts, segments, and their names.

Times are integers in samples at 48 kHz (the track timescale), so durations add up exactly;
they become seconds only when a playlist is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

SAMPLE_RATE = 48_000
#: samples per tick the stage mixer delivers (20 ms)
TICK_SAMPLES = 960
PARTS_PER_SEGMENT = 6
INIT_URI = "init.mp4"

CodecName = Literal["aac", "opus"]


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """How one codec is encoded and cut. A part is a whole number of coded frames."""

    name: CodecName
    encoder: str
    frame_size: int
    frames_per_part: int
    bit_rate: int = 64_000

    def __post_init__(self) -> None:
        if self.frame_size <= 0 or self.frames_per_part <= 0:
            raise ValueError(f"frame_size and frames_per_part must be positive: {self}")

    @property
    def part_samples(self) -> int:
        return self.frame_size * self.frames_per_part

    @property
    def segment_samples(self) -> int:
        return self.part_samples * PARTS_PER_SEGMENT

    def target_duration_for(self, parts_per_segment: int) -> int:
        """EXT-X-TARGETDURATION for segments of ``parts_per_segment`` parts."""
        return max(1, round(self.part_samples * parts_per_segment / SAMPLE_RATE))

    @property
    def part_target(self) -> float:
        """PART-TARGET in seconds: the nominal part rounded *up* to the millisecond.

        Every part must be no longer than this, and the 85 % floor does not apply to audio
        because each part is independent.
        """
        return math.ceil(self.part_samples * 1000 / SAMPLE_RATE) / 1000

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: segments rounded to the nearest second must not exceed it."""
        return self.target_duration_for(PARTS_PER_SEGMENT)


CODECS: dict[CodecName, CodecConfig] = {
    # 16 AAC frames = 0.341 s parts, 2.048 s segments.
    "aac": CodecConfig("aac", encoder="aac", frame_size=1024, frames_per_part=16),
    # libopus codes 20 ms frames; 17 of them (0.34 s) keep parts as long as AAC's.
    "opus": CodecConfig("opus", encoder="libopus", frame_size=960, frames_per_part=17),
}


def part_uri(msn: int, index: int) -> str:
    return f"part{msn}.{index}.m4s"


def segment_uri(msn: int) -> str:
    return f"seg{msn}.m4s"


def seconds(samples: int) -> float:
    return samples / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Part:
    """A partial segment: one ``moof`` + ``mdat`` whose samples all decode on their own."""

    msn: int
    index: int
    start: int
    duration: int
    #: wall-clock time (``time.time()``) of the first sample
    program_date_time: float
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.msn < 0 or self.index < 0:
            raise ValueError(f"part numbers must not be negative: {self.msn}.{self.index}")
        if self.duration <= 0 or self.start < 0:
            raise ValueError(
                f"part {self.msn}.{self.index} has bad timing {self.start}+{self.duration}"
            )

    @property
    def uri(self) -> str:
        return part_uri(self.msn, self.index)

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Segment:
    """A media segment: its parts, back to back. Its bytes are exactly theirs, concatenated."""

    msn: int
    parts: tuple[Part, ...]
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError(f"segment {self.msn} has no parts")
        for i, part in enumerate(self.parts):
            if part.msn != self.msn or part.index != i:
                raise ValueError(f"segment {self.msn} holds part {part.msn}.{part.index} at {i}")
            if i and part.start != self.parts[i - 1].end:
                raise ValueError(f"segment {self.msn} has a gap before part {i}")
        if len(self.data) != sum(len(p.data) for p in self.parts):
            raise ValueError(f"segment {self.msn} bytes are not its parts' bytes")

    @classmethod
    def of(cls, parts: tuple[Part, ...]) -> Segment:
        return cls(parts[0].msn, parts, b"".join(p.data for p in parts))

    @property
    def uri(self) -> str:
        return segment_uri(self.msn)

    @property
    def start(self) -> int:
        return self.parts[0].start

    @property
    def duration(self) -> int:
        return self.parts[-1].end - self.parts[0].start

    @property
    def program_date_time(self) -> float:
        return self.parts[0].program_date_time
