"""Media playlists as text (draft-pantos-hls-rfc8216bis): the live LL-HLS one and VOD ones.

Pure functions of what they are given; URIs are relative so the HTTP layer can serve them
under any per-listener prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tribune.broadcast.media import INIT_URI, Part, Segment, part_uri, seconds

LIVE_VERSION = 9
# VOD (and plain live) needs nothing newer than EXT-X-MAP without I-frames-only (6) and
# byte ranges (4).
VOD_VERSION = 7


def format_pdt(wallclock: float) -> str:
    """ISO 8601, UTC, milliseconds: ``2023-11-14T22:13:20.000Z``."""
    moment = datetime.fromtimestamp(wallclock, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(samples: int) -> str:
    return f"{seconds(samples):.5f}"


def _part_line(part: Part) -> str:
    # Every AAC/Opus frame decodes on its own, so every audio part is independent.
    return f'#EXT-X-PART:DURATION={_duration(part.duration)},URI="{part.uri}",INDEPENDENT=YES'


@dataclass(frozen=True, slots=True)
class LiveState:
    """A snapshot of the live edge to render."""

    target_duration: int
    part_target: float
    #: the complete segments in the window, oldest first
    segments: Sequence[Segment]
    #: parts of the segment being filled
    open_parts: Sequence[Part]
    #: media sequence number of the segment being filled
    next_msn: int
    #: segments with msn >= this get their parts listed
    parts_from_msn: int
    ended: bool
    #: False: plain live HLS, without parts, preload hint or server control
    low_latency: bool = True


def live_playlist(state: LiveState) -> str:
    """The live media playlist for ``state``: LL-HLS, or plain HLS if not ``low_latency``."""
    first = state.segments[0].msn if state.segments else state.next_msn
    low = state.low_latency
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{LIVE_VERSION if low else VOD_VERSION}",
        f"#EXT-X-TARGETDURATION:{state.target_duration}",
    ]
    if low:
        lines += [
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"PART-HOLD-BACK={3 * state.part_target:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={state.part_target:.3f}",
        ]
    lines += [
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{INIT_URI}"',
    ]
    for segment in state.segments:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_pdt(segment.program_date_time)}")
        if low and segment.msn >= state.parts_from_msn:
            lines.extend(_part_line(p) for p in segment.parts)
        lines.append(f"#EXTINF:{_duration(segment.duration)},")
        lines.append(segment.uri)
    if not low:
        if state.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"
    if state.open_parts:
        lines.append(
            f"#EXT-X-PROGRAM-DATE-TIME:{format_pdt(state.open_parts[0].program_date_time)}"
        )
        lines.extend(_part_line(p) for p in state.open_parts)
    if state.ended:
        lines.append("#EXT-X-ENDLIST")
    else:
        hint = part_uri(state.next_msn, len(state.open_parts))
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class VodEntry:
    """One line of a VOD playlist: a segment file, or a byte range of one."""

    uri: str
    duration: int
    program_date_time: float
    #: ``(length, offset)`` when the entry is only part of ``uri``
    byterange: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"VOD entry {self.uri} has duration {self.duration}")


def vod_playlist(entries: Iterable[VodEntry]) -> str:
    """A complete ``#EXT-X-PLAYLIST-TYPE:VOD`` playlist of ``entries``."""
    entries = list(entries)
    target = max((round(seconds(e.duration)) for e in entries), default=1)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VOD_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{INIT_URI}"',
    ]
    for entry in entries:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_pdt(entry.program_date_time)}")
        lines.append(f"#EXTINF:{_duration(entry.duration)},")
        if entry.byterange is not None:
            length, offset = entry.byterange
            lines.append(f"#EXT-X-BYTERANGE:{length}@{offset}")
        lines.append(entry.uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
