"""Fragments to parts, parts to segments, media time to wall-clock time.

Every fragment the encoder emits becomes one part; every ``parts_per_segment`` parts
(``PARTS_PER_SEGMENT`` unless told otherwise) close a segment, whose bytes are its parts'
bytes. The last segment of a broadcast may be short.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from tribune.broadcast.encoder import Fragment
from tribune.broadcast.media import PARTS_PER_SEGMENT, SAMPLE_RATE, Part, Segment


class TickClock:
    """Maps an input sample index to the wall-clock time the mixer stamped it with.

    The mixer's clock is the truth (it may drift from the sample count); within a tick we
    count samples. Before the first tick (encoder priming) we extrapolate backwards.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._times: list[float] = []

    def add(self, index: int, wallclock: float) -> None:
        self._starts.append(index)
        self._times.append(wallclock)

    def at(self, index: int) -> float:
        if not self._starts:
            raise LookupError("no ticks yet")
        i = max(bisect_right(self._starts, index) - 1, 0)
        return self._times[i] + (index - self._starts[i]) / SAMPLE_RATE

    def forget_before(self, index: int) -> None:
        """Drop ticks that end before ``index``; keeps the list to about one part of ticks."""
        i = bisect_right(self._starts, index) - 1
        if i > 0:
            del self._starts[:i]
            del self._times[:i]


@dataclass(frozen=True, slots=True)
class Packaged:
    """What one fragment produced: always a part, sometimes the segment it completed."""

    part: Part
    segment: Segment | None


class Packager:
    """Numbers parts and segments and stamps them with program date-time."""

    def __init__(self, clock: TickClock, *, parts_per_segment: int = PARTS_PER_SEGMENT) -> None:
        if parts_per_segment < 1:
            raise ValueError(f"parts_per_segment must be at least 1, got {parts_per_segment}")
        self._clock = clock
        self.parts_per_segment = parts_per_segment
        self._parts: list[Part] = []
        self._msn = 0

    @property
    def next_msn(self) -> int:
        """Media sequence number of the segment being filled."""
        return self._msn

    @property
    def open_parts(self) -> tuple[Part, ...]:
        return tuple(self._parts)

    def add(self, fragment: Fragment, delay: int) -> Packaged:
        """Package one fragment; ``delay`` is the encoder priming in samples."""
        index = fragment.start - delay
        part = Part(
            msn=self._msn,
            index=len(self._parts),
            start=fragment.start,
            duration=fragment.duration,
            program_date_time=self._clock.at(index),
            data=fragment.data,
        )
        self._clock.forget_before(index)
        self._parts.append(part)
        if len(self._parts) < self.parts_per_segment:
            return Packaged(part, None)
        return Packaged(part, self._close_segment())

    def flush(self) -> Segment | None:
        """Close the segment in flight, however short, at the end of the broadcast."""
        return self._close_segment() if self._parts else None

    def _close_segment(self) -> Segment:
        segment = Segment.of(tuple(self._parts))
        self._parts.clear()
        self._msn += 1
        return segment
