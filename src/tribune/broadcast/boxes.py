"""Just enough ISO-BMFF reading to cut the muxer's byte stream into fragments and time them.

The muxer decides where fragments end; reading the ``moof`` back (rather than trusting our
own packet count) makes the playlist durations the media's durations by construction.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")

# tfhd flags (ISO/IEC 14496-12 8.8.7)
_TFHD_BASE_DATA_OFFSET = 0x000001
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
_TFHD_DEFAULT_DURATION = 0x000008
# trun flags (8.8.8)
_TRUN_DATA_OFFSET = 0x000001
_TRUN_FIRST_SAMPLE_FLAGS = 0x000004
_TRUN_DURATION = 0x000100
_TRUN_SIZE = 0x000200
_TRUN_FLAGS = 0x000400
_TRUN_CTS = 0x000800


@dataclass(frozen=True, slots=True)
class Box:
    """One box: its four-character type and where it lies in the buffer it was read from."""

    type: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def iter_boxes(
    data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
) -> Iterator[Box]:
    """Yield the complete boxes in ``data[start:end]``; stop quietly at a truncated one.

    >>> [b.type for b in iter_boxes(bytes.fromhex("0000000866726565"))]
    ['free']
    """
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:  # 64-bit largesize follows the type
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # box runs to the end of the buffer
            size = end - pos
        if size < header or pos + size > end:
            return
        yield Box(kind.decode("latin-1"), pos, size)
        pos += size


def _child(data: bytes, parent: Box, kind: str) -> Box:
    for box in iter_boxes(data, parent.start + 8, parent.end):
        if box.type == kind:
            return box
    raise ValueError(f"no {kind!r} box inside {parent.type!r}")


@dataclass(frozen=True, slots=True)
class FragmentTiming:
    """What a ``moof`` says about its fragment, in track timescale units."""

    sequence: int
    base_time: int
    sample_count: int
    duration: int


def read_moof(data: bytes, moof: Box) -> FragmentTiming:
    """Read sequence number, ``tfdt`` and the summed sample durations of a one-track ``moof``."""
    (sequence,) = struct.unpack_from(">I", data, _child(data, moof, "mfhd").start + 12)
    traf = _child(data, moof, "traf")

    tfhd = _child(data, traf, "tfhd")
    (tfhd_flags,) = struct.unpack_from(">I", data, tfhd.start + 8)
    tfhd_flags &= 0xFFFFFF
    pos = tfhd.start + 16  # version/flags, track_ID
    if tfhd_flags & _TFHD_BASE_DATA_OFFSET:
        pos += 8
    if tfhd_flags & _TFHD_SAMPLE_DESCRIPTION_INDEX:
        pos += 4
    default_duration = 0
    if tfhd_flags & _TFHD_DEFAULT_DURATION:
        (default_duration,) = struct.unpack_from(">I", data, pos)

    tfdt = _child(data, traf, "tfdt")
    if data[tfdt.start + 8] == 1:
        (base_time,) = struct.unpack_from(">Q", data, tfdt.start + 12)
    else:
        (base_time,) = struct.unpack_from(">I", data, tfdt.start + 12)

    sample_count = 0
    duration = 0
    for trun in iter_boxes(data, traf.start + 8, traf.end):
        if trun.type != "trun":
            continue
        (trun_flags, count) = struct.unpack_from(">II", data, trun.start + 8)
        trun_flags &= 0xFFFFFF
        pos = trun.start + 16
        if trun_flags & _TRUN_DATA_OFFSET:
            pos += 4
        if trun_flags & _TRUN_FIRST_SAMPLE_FLAGS:
            pos += 4
        if trun_flags & _TRUN_DURATION:
            stride = 4 * sum(
                bool(trun_flags & f) for f in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS)
            )
            for i in range(count):
                (d,) = struct.unpack_from(">I", data, pos + i * stride)
                duration += d
        else:
            duration += count * default_duration
        sample_count += count
    return FragmentTiming(sequence, base_time, sample_count, duration)
