"""A Space's recording as one presentation, across restarts.

Each time a Space's media starts (at go-live, and again if the server restarts while it
is live) the broadcast records into a new run directory. Replay stitches the runs
together: one VOD playlist with ``EXT-X-DISCONTINUITY`` and a new ``EXT-X-MAP`` at each
run boundary, so everything recorded before a crash plays, followed by what came after.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer, OutputContainer

from tribune.broadcast import INIT_URI, BadClipRange, Recording, RecordingNotFound
from tribune.exceptions import NotFound
from tribune.service.media import run_directories

_TARGET = re.compile(r"^#EXT-X-TARGETDURATION:(\d+)$", re.M)


def _entries(playlist: str, run: str) -> list[str]:
    """The media lines of a one-run VOD playlist, URIs made relative to the Space."""
    out = []
    body = playlist.split(f'#EXT-X-MAP:URI="{INIT_URI}"', 1)[1]
    for line in body.splitlines():
        if not line or line == "#EXT-X-ENDLIST":
            continue
        out.append(line if line.startswith("#") else f"{run}/{line}")
    return out


@dataclass(frozen=True)
class SpaceRecording:
    runs: tuple[tuple[str, Recording], ...]

    @classmethod
    def open(cls, root: Path, space_id: str) -> SpaceRecording:
        runs = []
        for directory in run_directories(root, space_id):
            try:
                recording = Recording.open(directory)
            except RecordingNotFound:
                continue  # a run that died before its first segment
            if recording.segments:
                runs.append((directory.name, recording))
        if not runs:
            raise NotFound(f"Space {space_id!r} has no recording")
        return cls(tuple(runs))

    @property
    def duration(self) -> float:
        return sum(rec.duration for _, rec in self.runs)

    def playlist(self) -> str:
        lines: list[str] = []
        target = 1
        for n, (run, recording) in enumerate(self.runs):
            text = recording.vod_playlist()
            if match := _TARGET.search(text):
                target = max(target, int(match.group(1)))
            if n:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="{run}/{INIT_URI}"')
            lines += _entries(text, run)
        head = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{target}",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        return "\n".join([*head, *lines, "#EXT-X-ENDLIST"]) + "\n"

    def _locate(self, start_s: float, end_s: float) -> tuple[str, Recording, float, float]:
        """The run holding ``[start_s, end_s)`` of the Space's timeline, and local times."""
        offset = 0.0
        for run, recording in self.runs:
            if start_s < offset + recording.duration or run == self.runs[-1][0]:
                if end_s > offset + recording.duration + 0.001 and run != self.runs[-1][0]:
                    raise BadClipRange(
                        f"{start_s:g}-{end_s:g} s spans a restart of the Space at "
                        f"{offset + recording.duration:.1f} s; clip each side separately"
                    )
                return run, recording, max(0.0, start_s - offset), end_s - offset
            offset += recording.duration
        raise BadClipRange("the recording is empty")  # pragma: no cover - open() refuses

    def clip_playlist(self, start_s: float, end_s: float) -> str:
        if start_s < 0:
            raise BadClipRange(f"clip start must be 0 s or later (got {start_s} s)")
        run, recording, lo, hi = self._locate(start_s, end_s)
        text = recording.clip_playlist(lo, hi)
        head, _, _ = text.partition(f'#EXT-X-MAP:URI="{INIT_URI}"')
        body = _entries(text, run)
        return (
            head + f'#EXT-X-MAP:URI="{run}/{INIT_URI}"\n' + "\n".join(body) + "\n#EXT-X-ENDLIST\n"
        )

    def file(self, run: str, name: str) -> Path:
        for known, recording in self.runs:
            if known == run:
                path = recording.directory / name
                if name == INIT_URI or any(s.uri == name for s in recording.segments):
                    return path
        raise NotFound(f"no {run}/{name} in this recording")

    def export_m4a(self, start_s: float | None, end_s: float | None) -> Path:
        """Remuxed (not re-encoded) ``.m4a`` of the whole Space or of a clip. Blocking."""
        if start_s is not None or end_s is not None:
            lo = 0.0 if start_s is None else start_s
            hi = self.duration if end_s is None else end_s
            if lo < 0:
                raise BadClipRange(f"clip start must be 0 s or later (got {lo} s)")
            _, recording, local_lo, local_hi = self._locate(lo, hi)
            return recording.export_m4a(local_lo, local_hi)
        exports = [recording.export_m4a() for _, recording in self.runs]
        if len(exports) == 1:
            return exports[0]
        dest = self.runs[-1][1].directory.parent / "recording.m4a"
        _concatenate(exports, dest)
        return dest


def _concatenate(sources: list[Path], dest: Path) -> None:
    """Join .m4a files of the same codec into one by stream copy, timestamps rebased."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with av.open(str(sources[0])) as first:
            assert isinstance(first, InputContainer)
            template = first.streams.audio[0]
            fmt = "ipod" if template.codec_context.name == "aac" else "mp4"
            with av.open(str(tmp), "w", format=fmt, options={"movflags": "+faststart"}) as sink:
                assert isinstance(sink, OutputContainer)
                out = sink.add_stream_from_template(template)
                offset = 0
                for source_path in sources:
                    with av.open(str(source_path)) as source:
                        assert isinstance(source, InputContainer)
                        stream = source.streams.audio[0]
                        end = offset
                        for packet in source.demux(stream):
                            if packet.pts is None or packet.duration is None:
                                continue
                            packet.pts += offset
                            packet.dts = packet.pts
                            end = max(end, packet.pts + packet.duration)
                            packet.stream = out
                            sink.mux(packet)
                        offset = end
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
