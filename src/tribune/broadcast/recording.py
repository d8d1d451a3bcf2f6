"""The recording: every segment on disk as it is made, and replay, clips and downloads from it.

Layout of a recording directory::

    init.mp4               ftyp+moov, written once before any segment
    seg0.m4s ...           the live segments, byte for byte
    seg7.partial.m4s       the segment being made: its parts so far, back to back
    index.jsonl            one JSON line per part and per segment, then {"ended": ...}
                           when the broadcast closed

A segment is made part by part (every 0.34 s) in its temporary ``.partial`` file: each part
is appended and fsynced, and only then is the part's index line appended and fsynced. When
the segment is whole the file is renamed into place, the directory fsynced, and the
segment's line appended. So the index never names bytes that are not on disk, and a crash
loses at most the part in flight (plus whatever the writer thread had not reached): on
reading, the parts of an unfinished segment that the index names are a short last segment,
served as a byte range of the partial file. A torn last index line is ignored on reading.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import logging
import math
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import av
from av.container import InputContainer, OutputContainer

from tribune.broadcast.exceptions import (
    BadClipRange,
    RecordingCorrupt,
    RecordingExists,
    RecordingNotFound,
)
from tribune.broadcast.media import INIT_URI, SAMPLE_RATE, Part, Segment, seconds, segment_uri
from tribune.broadcast.playlist import VodEntry, format_pdt, vod_playlist

logger = logging.getLogger(__name__)

INDEX = "index.jsonl"
#: the longest clip anyone may cut, in seconds
MAX_CLIP_SECONDS = 300.0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(directory: Path, name: str, data: bytes) -> None:
    """Write ``directory/name`` so that after a crash it is either absent or whole."""
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / name)
    _fsync_dir(directory)


# -- writing -----------------------------------------------------------------------------


class _Stop:
    pass


_Job = Part | Segment | dict[str, Any] | concurrent.futures.Future[None] | _Stop


def partial_uri(msn: int) -> str:
    return f"seg{msn}.partial.m4s"


class RecordingWriter:
    """Appends segments to a recording directory from one background thread.

    fsync can take tens of milliseconds on a busy disk; doing it on the event loop would
    stall every listener, so the loop only enqueues and this thread does the I/O, in order.
    """

    def __init__(self, directory: Path, init: bytes) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / INDEX).exists():
            raise RecordingExists(f"{directory} already holds a recording; use a new directory")
        _write_durably(directory, INIT_URI, init)
        self._index = open(directory / INDEX, "xb")  # noqa: SIM115 - held for the writer's life
        _fsync_dir(directory)
        self.error: BaseException | None = None
        #: the unfinished segment's file and (msn, parts written, bytes written)
        self._partial: BinaryIO | None = None
        self._partial_at = (-1, 0, 0)
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        # Guards _accepting, so a barrier is either queued before the stop or answered here.
        self._lock = threading.Lock()
        self._accepting = True
        self._thread = threading.Thread(
            target=self._run, name=f"recording-{directory.name}", daemon=True
        )
        self._thread.start()

    def append_part(self, part: Part) -> None:
        self._queue.put(part)

    def append(self, segment: Segment) -> None:
        self._queue.put(segment)

    def end(self, wallclock: float) -> None:
        self._queue.put({"ended": True, "wallclock": wallclock})

    def barrier(self) -> concurrent.futures.Future[None]:
        """A future that resolves once everything queued before it is on disk."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            if self._accepting:
                self._queue.put(future)
                return future
        self._resolve(future)  # the thread has finished everything it will ever write
        return future

    def _resolve(self, future: concurrent.futures.Future[None]) -> None:
        if self.error is None:
            future.set_result(None)
        else:
            future.set_exception(self.error)

    def close(self) -> None:
        """Finish the queue and stop the thread (blocks until the disk has it all)."""
        if self._thread.is_alive():
            self._queue.put(_Stop())
            self._thread.join()

    def abandon(self) -> None:
        """Let the thread finish what is queued and exit, without waiting or marking an end.

        For a broadcast dropped without close(): the recording is left as a crash would
        leave it, but the thread and the index file do not outlive it.
        """
        self._queue.put(_Stop())

    def _run(self) -> None:
        try:
            while True:
                job = self._queue.get()
                if isinstance(job, _Stop):
                    self._stop()
                    return
                if isinstance(job, concurrent.futures.Future):
                    self._resolve(job)
                    continue
                if self.error is not None:
                    continue  # already logged; a recording with a hole is worse than a short one
                try:
                    if isinstance(job, Part):
                        self._write_part(job)
                    elif isinstance(job, Segment):
                        self._write_segment(job)
                    else:
                        self._append_line(job)
                except OSError as exc:
                    self.error = exc
                    logger.exception(
                        "recording to %s failed; live stream continues", self.directory
                    )
        finally:
            self._index.close()
            if self._partial is not None:
                self._partial.close()

    def _stop(self) -> None:
        with self._lock:
            self._accepting = False
        while True:  # answer barriers queued behind the stop; nothing else should be there
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, concurrent.futures.Future):
                self._resolve(job)
            elif not isinstance(job, _Stop):
                logger.error("recording %s: %r queued after the end, dropped", self.directory, job)

    def _write_part(self, part: Part) -> None:
        msn, count, size = self._partial_at
        if part.index == 0:
            if self._partial is not None:
                self._partial.close()
            self._partial = open(self.directory / partial_uri(part.msn), "wb")  # noqa: SIM115
            _fsync_dir(self.directory)
            msn, count, size = part.msn, 0, 0
        if self._partial is None or (msn, count) != (part.msn, part.index):
            # Not the next part of the open segment (the writer started mid-segment): the
            # segment will be written whole when it completes.
            return
        self._partial.write(part.data)
        self._partial.flush()
        os.fsync(self._partial.fileno())
        self._partial_at = (msn, count + 1, size + len(part.data))
        self._append_line(
            {
                "part": [part.msn, part.index],
                "start": part.start,
                "duration": part.duration,
                "size": len(part.data),
                "wallclock": part.program_date_time,
            }
        )

    def _write_segment(self, segment: Segment) -> None:
        msn, count, size = self._partial_at
        if (
            self._partial is not None
            and msn == segment.msn
            and count == len(segment.parts)
            and size == len(segment.data)
        ):
            # Every part is already durable in the partial file: it is the segment.
            self._partial.close()
            self._partial = None
            os.replace(self.directory / partial_uri(msn), self.directory / segment.uri)
            _fsync_dir(self.directory)
        else:
            _write_durably(self.directory, segment.uri, segment.data)
            if self._partial is not None and msn == segment.msn:
                self._partial.close()
                self._partial = None
                (self.directory / partial_uri(msn)).unlink(missing_ok=True)
        self._append_line(
            {
                "msn": segment.msn,
                "start": segment.start,
                "duration": segment.duration,
                "seconds": round(seconds(segment.duration), 6),
                "pdt": format_pdt(segment.program_date_time),
                "wallclock": segment.program_date_time,
                "parts": [[len(p.data), p.duration] for p in segment.parts],
            }
        )

    def _append_line(self, record: dict[str, Any]) -> None:
        self._index.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._index.flush()
        os.fsync(self._index.fileno())


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedPart:
    """A part inside a segment file: its byte range and timing (samples)."""

    offset: int
    size: int
    start: int
    duration: int
    program_date_time: float

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class RecordedSegment:
    msn: int
    start: int
    duration: int
    program_date_time: float
    parts: tuple[RecordedPart, ...]
    #: False for the unfinished segment of a crashed recording: its parts so far, in the
    #: partial file (which may hold more bytes than those parts)
    complete: bool = True
    #: the file holding it, when not the usual name (see ``Recording.open``)
    file: str | None = None

    def __post_init__(self) -> None:
        if self.msn < 0 or self.duration <= 0 or not self.parts:
            raise ValueError(f"bad recorded segment {self.msn}")
        if sum(p.duration for p in self.parts) != self.duration:
            raise ValueError(f"segment {self.msn}: part durations do not add up")

    @property
    def uri(self) -> str:
        if self.file is not None:
            return self.file
        return segment_uri(self.msn) if self.complete else partial_uri(self.msn)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @classmethod
    def unfinished(cls, msn: int, records: list[dict[str, Any]]) -> RecordedSegment:
        """The durable parts of segment ``msn`` (its part records, in order)."""
        parts: list[RecordedPart] = []
        offset = 0
        for index, record in enumerate(records):
            if record["part"] != [msn, index]:
                raise ValueError(f"part record {record['part']} where {msn}.{index} belongs")
            start, duration = int(record["start"]), int(record["duration"])
            if parts and start != parts[-1].end:
                raise ValueError(f"segment {msn} has a gap before part {index}")
            size = int(record["size"])
            parts.append(RecordedPart(offset, size, start, duration, float(record["wallclock"])))
            offset += size
        return cls(
            msn,
            parts[0].start,
            parts[-1].end - parts[0].start,
            parts[0].program_date_time,
            tuple(parts),
            complete=False,
        )

    @property
    def end(self) -> int:
        return self.start + self.duration

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RecordedSegment:
        start = int(record["start"])
        pdt = float(record["wallclock"])
        parts = []
        offset = 0
        at = start
        for size, duration in record["parts"]:
            parts.append(
                RecordedPart(offset, int(size), at, int(duration), pdt + (at - start) / SAMPLE_RATE)
            )
            offset += int(size)
            at += int(duration)
        return cls(int(record["msn"]), start, int(record["duration"]), pdt, tuple(parts))


def _read_index(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The index's segment records, part records, and whether it says the broadcast ended;
    skips a torn last line."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line the crash cut short
    if tail.strip(b"\0 \t"):
        logger.warning("ignoring torn last line of %s: %r", path, tail[:80])
    records: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError) as exc:
            if n == len(lines) - 1 and not tail:
                logger.warning("ignoring unreadable last line of %s: %r", path, line[:80])
                break
            raise RecordingCorrupt(f"{path} line {n + 1} is unreadable: {exc}") from exc
        records.append(record)
    ended = bool(records) and records[-1].get("ended") is True
    return [r for r in records if "msn" in r], [r for r in records if "part" in r], ended


class Recording:
    """A recording directory read back: replay, clips and downloads.

    >>> rec = Recording.open(Path("data/spaces/42"))   # doctest: +SKIP
    >>> rec.clip_playlist(60, 90)                      # doctest: +SKIP
    '#EXTM3U...'
    """

    def __init__(self, directory: Path, segments: tuple[RecordedSegment, ...], ended: bool) -> None:
        self.directory = directory
        self.segments = segments
        self.ended = ended

    @classmethod
    def open(cls, directory: Path) -> Recording:
        """Read what is on disk, after a clean close, a crash, or while still recording."""
        index = directory / INDEX
        if not index.exists() or not (directory / INIT_URI).exists():
            raise RecordingNotFound(f"no recording in {directory}")
        records, part_records, ended = _read_index(index)
        segments: list[RecordedSegment] = []
        for n, record in enumerate(records):
            try:
                segment = RecordedSegment.from_record(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordingCorrupt(f"{index} segment record {n} is invalid: {exc}") from exc
            if segment.msn != n or (segments and segment.start != segments[-1].end):
                raise RecordingCorrupt(f"{index}: segment {segment.msn} is out of sequence at {n}")
            path = directory / segment.uri
            if not path.exists() or path.stat().st_size != segment.size:
                raise RecordingCorrupt(f"{path} is missing or not {segment.size} bytes")
            segments.append(segment)
        msn = len(segments)
        unfinished = [
            r for r in part_records if isinstance(r.get("part"), list) and r["part"][0] == msn
        ]
        if unfinished and not ended:
            try:
                segment = RecordedSegment.unfinished(msn, unfinished)
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordingCorrupt(
                    f"{index}: parts of segment {msn} are invalid: {exc}"
                ) from exc
            if segments and segment.start != segments[-1].end:
                raise RecordingCorrupt(f"{index}: parts of segment {msn} are out of sequence")
            # The partial file may be longer (a part written but not yet indexed), or already
            # renamed into place (the crash came before the segment's index line).
            for name in (segment.uri, segment_uri(msn)):
                path = directory / name
                if path.exists() and path.stat().st_size >= segment.size:
                    segments.append(dataclasses.replace(segment, file=name))
                    break
            else:
                logger.warning("no file holds the %d indexed bytes of %s", segment.size, path)
        return cls(directory, tuple(segments), ended)

    @property
    def duration(self) -> float:
        """Seconds of media recorded."""
        return seconds(sum(s.duration for s in self.segments))

    @property
    def start(self) -> int:
        return self.segments[0].start if self.segments else 0

    def vod_playlist(self) -> str:
        """Every recorded segment as a VOD playlist (URIs relative to the directory)."""
        return vod_playlist(
            VodEntry(s.uri, s.duration, s.program_date_time, None if s.complete else (s.size, 0))
            for s in self.segments
        )

    def _select(
        self, start_s: float, end_s: float
    ) -> list[tuple[RecordedSegment, list[RecordedPart]]]:
        if not (math.isfinite(start_s) and math.isfinite(end_s)):
            raise BadClipRange(
                f"clip bounds must be finite numbers of seconds (got {start_s}, {end_s})"
            )
        if start_s < 0:
            raise BadClipRange(f"clip start must be 0 s or later (got {start_s} s)")
        if end_s <= start_s:
            raise BadClipRange(f"clip end ({end_s} s) must be after its start ({start_s} s)")
        if end_s - start_s > MAX_CLIP_SECONDS:
            raise BadClipRange(
                f"clips are at most {MAX_CLIP_SECONDS:.0f} s long; {start_s}-{end_s} s is "
                f"{end_s - start_s:g} s"
            )
        # A millisecond of slack lets a client send back the duration it was shown.
        if end_s > self.duration + 0.001:
            raise BadClipRange(
                f"clip ends at {end_s} s, after the end of the recording ({self.duration:.3f} s)"
            )
        lo = self.start + round(start_s * SAMPLE_RATE)
        hi = self.start + round(min(end_s, self.duration) * SAMPLE_RATE)
        chosen = []
        for segment in self.segments:
            parts = [p for p in segment.parts if p.end > lo and p.start < hi]
            if parts:
                chosen.append((segment, parts))
        return chosen

    def clip_playlist(self, start_s: float, end_s: float) -> str:
        """A VOD playlist of ``[start_s, end_s)`` (seconds from the start of the recording).

        Clips are part-aligned, not segment-aligned: entries are byte ranges of whole parts
        within the segment files, so a clip overshoots each end by less than one part
        (0.34 s). Raises BadClipRange for negative, empty, over-300 s or past-the-end ranges.
        """
        entries = []
        for segment, parts in self._select(start_s, end_s):
            first = parts[0]
            whole = len(parts) == len(segment.parts) and segment.complete
            entries.append(
                VodEntry(
                    segment.uri,
                    sum(p.duration for p in parts),
                    first.program_date_time,
                    None if whole else (sum(p.size for p in parts), first.offset),
                )
            )
        return vod_playlist(entries)

    def export_m4a(
        self, start_s: float | None = None, end_s: float | None = None, dest: Path | None = None
    ) -> Path:
        """Remux (stream copy, no re-encoding) the recording or a clip of it into one .m4a.

        A clip keeps the coded frames (21 ms each for AAC) that overlap the range. The file
        is written next to the recording unless ``dest`` is given, and replaced atomically.
        This reads and writes the whole file: call it in a thread from async code.
        """
        if start_s is None and end_s is None:
            ranges = [(s.uri, 0, s.size) for s in self.segments]
            lo, hi = self.start, self.start + sum(s.duration for s in self.segments)
            name = "recording.m4a"
        else:
            start_s = 0.0 if start_s is None else start_s
            end_s = self.duration if end_s is None else end_s
            chosen = self._select(start_s, end_s)
            ranges = [
                (seg.uri, parts[0].offset, sum(p.size for p in parts)) for seg, parts in chosen
            ]
            lo = self.start + round(start_s * SAMPLE_RATE)
            hi = self.start + round(end_s * SAMPLE_RATE)
            name = f"clip-{round(start_s * 1000)}-{round(end_s * 1000)}.m4a"
        if not ranges:
            raise BadClipRange("the recording has no media to export yet")
        dest = dest or self.directory / "exports" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name, so two people exporting the same clip do not collide.
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        reader = _ConcatReader(
            [(self.directory / INIT_URI, 0, None)]
            + [(self.directory / uri, offset, size) for uri, offset, size in ranges]
        )
        try:
            with av.open(reader, "r", format="mp4") as source:
                assert isinstance(source, InputContainer)
                _remux(source, tmp, lo, hi)
            os.replace(tmp, dest)
        finally:
            reader.close()
            tmp.unlink(missing_ok=True)
        return dest


def _remux(source: InputContainer, path: Path, lo: int, hi: int) -> None:
    """Copy the packets overlapping ``[lo, hi)`` into a non-fragmented MP4 starting at 0."""
    in_stream = source.streams.audio[0]
    # The iPod (M4A) muxer is what players expect of .m4a; it only takes AAC (and ALAC).
    fmt = "ipod" if in_stream.codec_context.name == "aac" else "mp4"
    with av.open(str(path), "w", format=fmt, options={"movflags": "+faststart"}) as sink:
        assert isinstance(sink, OutputContainer)
        out_stream = sink.add_stream_from_template(in_stream)
        first: int | None = None
        for packet in source.demux(in_stream):
            if packet.pts is None or packet.duration is None:
                continue  # the demuxer's end-of-stream marker
            tb = packet.time_base
            pts = round(packet.pts * tb * SAMPLE_RATE)
            if pts + round(packet.duration * tb * SAMPLE_RATE) <= lo or pts >= hi:
                continue
            if first is None:
                first = packet.pts
            packet.pts -= first
            packet.dts = packet.pts
            packet.stream = out_stream
            sink.mux(packet)


class _ConcatReader(io.RawIOBase):
    """Reads byte ranges of several files as one stream, without loading them whole."""

    def __init__(self, ranges: list[tuple[Path, int, int | None]]) -> None:
        super().__init__()
        self._ranges: Iterator[tuple[Path, int, int | None]] = iter(ranges)
        self._file: io.BufferedReader | None = None
        self._left: int | None = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # Unseekable keeps the mp4 demuxer reading forwards through the fragments.
        return False

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._file is None:
                nxt = next(self._ranges, None)
                if nxt is None:
                    return 0
                path, offset, size = nxt
                self._file = open(path, "rb")  # noqa: SIM115 - closed when its range is done
                self._file.seek(offset)
                self._left = size
            want = len(view) if self._left is None else min(len(view), self._left)
            n = self._file.readinto(view[:want]) if want else 0
            if n:
                if self._left is not None:
                    self._left -= n
                return n
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()
