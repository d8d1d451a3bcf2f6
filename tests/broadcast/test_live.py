"""The live LL-HLS output, read by ffmpeg and ffprobe as a player would."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tests.broadcast.conftest import ProgramRun, Snapshot
from tests.broadcast.hls import (
    RATE,
    T0,
    attributes,
    decode,
    dominant_hz,
    media_extent,
    parse_playlist,
    rms,
    silence_start,
    ticks,
    tone,
)
from tribune.broadcast import Broadcast


def part_target(snap: Snapshot) -> float:
    return float(attributes(snap.playlist.tags["EXT-X-PART-INF"])["PART-TARGET"])


def test_ffmpeg_plays_the_ended_live_playlist_440_then_silence_then_660(
    program_run: ProgramRun,
) -> None:
    """ffmpeg decodes the whole live playlist: 440 Hz, silence, 660 Hz, duration within a part."""
    snap = program_run.final
    assert snap.playlist.ended
    audio = decode(snap.directory / "live.m3u8")
    assert abs(len(audio) / RATE - program_run.pushed_seconds) <= part_target(snap)
    assert abs(dominant_hz(audio, 1.0, 7.0) - 440) < 1
    assert rms(audio, 1.0, 7.0) > 0.3
    assert rms(audio, 8.2, 8.9) < 0.01
    assert abs(dominant_hz(audio, 9.3, 11.8) - 660) < 1


def test_ffmpeg_plays_the_live_playlist_while_the_space_is_live(program_run: ProgramRun) -> None:
    """Mid-broadcast (no ENDLIST), the playlist plays from its first segment, tones in place."""
    snap = program_run.live
    assert not snap.playlist.ended
    complete = sum(s.duration for s in snap.playlist.segments)
    # A live playlist makes ffmpeg wait for more media: stop it a little before the edge.
    limit = complete - 0.1
    audio = decode(snap.directory / "live.m3u8", "-live_start_index", "0", limit=limit)
    assert abs(len(audio) / RATE - limit) < 0.002
    assert abs(dominant_hz(audio, 1.0, 7.0) - 440) < 1
    assert abs(dominant_hz(audio, 9.3, complete) - 660) < 1


def test_every_part_and_segment_lasts_what_the_playlist_says(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """ffprobe's extent of each part and segment equals DURATION/EXTINF, back to back in time."""
    jobs: dict[tuple[str, str], Path] = {}
    for snap in (program_run.live, program_run.final):
        init = (snap.directory / "init.mp4").read_bytes()
        pl = snap.playlist
        uris = [s.uri for s in pl.segments] + [p.uri for s in pl.segments for p in s.parts]
        for uri in uris + [p.uri for p in pl.open_parts]:
            path = tmp_path / f"{snap.directory.name}-{uri}.mp4"
            path.write_bytes(init + (snap.directory / uri).read_bytes())
            jobs[snap.directory.name, uri] = path
    with ThreadPoolExecutor() as pool:  # one ffprobe per file; run them side by side
        extents = dict(zip(jobs, pool.map(media_extent, jobs.values()), strict=True))

    for snap in (program_run.live, program_run.final):
        pt = part_target(snap)

        def check(uri: str, duration: float, at: float, snap: Snapshot = snap) -> float:
            start, end = extents[snap.directory.name, uri]
            assert abs(start - at) < 1e-4, f"{uri} starts at {start}, not {at}"
            assert abs(end - start - duration) < 1e-4, f"{uri} lasts {end - start}, not {duration}"
            return end

        at = 0.0  # both playlists start at MEDIA-SEQUENCE 0
        for seg in snap.playlist.segments:
            end = check(seg.uri, seg.duration, at)
            if seg.parts:
                joined = b"".join((snap.directory / p.uri).read_bytes() for p in seg.parts)
                assert joined == (snap.directory / seg.uri).read_bytes()
            for part in seg.parts:
                assert part.duration <= pt
                at = check(part.uri, part.duration, at)
            at = end
        for part in snap.playlist.open_parts:
            at = check(part.uri, part.duration, at)


def test_live_playlist_has_the_ll_hls_tags_and_consistent_numbering(
    program_run: ProgramRun,
) -> None:
    """Header tags, MEDIA-SEQUENCE, segment and part numbering, parts of the last 3, the hint."""
    pl = program_run.live.playlist
    tags = pl.tags
    assert tags["EXT-X-VERSION"] == "9"
    target = int(tags["EXT-X-TARGETDURATION"])
    pt = part_target(program_run.live)
    assert 0.3 < pt <= 0.5
    control = attributes(tags["EXT-X-SERVER-CONTROL"])
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert abs(float(control["PART-HOLD-BACK"]) - 3 * pt) < 1e-9
    assert attributes(tags["EXT-X-MAP"])["URI"] == "init.mp4"
    assert tags["EXT-X-MEDIA-SEQUENCE"] == "0"

    assert [s.msn for s in pl.segments] == list(range(len(pl.segments)))
    assert len(pl.segments) >= 4
    for seg in pl.segments:
        assert seg.uri == f"seg{seg.msn}.m4s"
        assert round(seg.duration) <= target
        assert [p.uri for p in seg.parts] in ([], [f"part{seg.msn}.{i}.m4s" for i in range(6)])
        assert all(p.independent for p in seg.parts)
        if seg.parts:
            assert abs(sum(p.duration for p in seg.parts) - seg.duration) < 1e-4
    assert all(len(s.parts) == 6 for s in pl.segments[-3:])

    following = len(pl.segments)
    assert pl.open_parts, "the snapshot is taken part-way through a segment"
    assert [p.uri for p in pl.open_parts] == [
        f"part{following}.{i}.m4s" for i in range(len(pl.open_parts))
    ]
    assert pl.preload_hint == {"TYPE": "PART", "URI": f"part{following}.{len(pl.open_parts)}.m4s"}


def test_program_date_times_follow_the_pushed_wall_clock(program_run: ProgramRun) -> None:
    """PDTs advance with the media, and the 440 Hz tone ends at PDT time T0 + 8 s (within 10 ms)."""
    snap = program_run.final
    segs = snap.playlist.segments
    for before, after in itertools.pairwise(segs):
        assert before.program_date_time is not None
        assert after.program_date_time is not None
        assert abs(after.program_date_time - before.program_date_time - before.duration) < 0.0015
    live = program_run.live.playlist
    assert live.open_pdt is not None
    assert live.segments[-1].program_date_time is not None
    assert (
        abs(live.open_pdt - live.segments[-1].program_date_time - live.segments[-1].duration)
        < 0.0015
    )

    audio = decode(snap.directory / "live.m3u8")
    end_of_440 = silence_start(audio, after_s=7.5)
    starts = np.cumsum([0.0] + [s.duration for s in segs])
    k = int(np.searchsorted(starts, end_of_440, side="right")) - 1
    pdt = segs[k].program_date_time
    assert pdt is not None
    assert abs(pdt + (end_of_440 - starts[k]) - (T0 + 8.0)) < 0.010


async def test_live_window_slides_and_keeps_about_twenty_segments(tmp_path: Path) -> None:
    """After 50 s the playlist lists the last 20 segments; old ones leave memory but not disk."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        for pcm, wallclock in ticks(tone(440, 50)):
            broadcast.push(pcm, wallclock)
        pl = parse_playlist(broadcast.playlist())
        nxt = broadcast.next_msn
        assert nxt == 24
        assert [s.msn for s in pl.segments] == list(range(nxt - 20, nxt))
        assert pl.tags["EXT-X-MEDIA-SEQUENCE"] == str(nxt - 20)
        assert [s.msn for s in pl.segments if s.parts] == [nxt - 3, nxt - 2, nxt - 1]
        assert broadcast.segment_bytes(nxt - 20) is not None
        assert broadcast.segment_bytes(0) is None
        assert broadcast.part_bytes(0, 0) is None
        assert broadcast.part_bytes(nxt - 1, 5) is not None
        await broadcast.sync()
        recorded = broadcast.recording().segments
        assert [s.msn for s in recorded if s.complete] == list(range(nxt))
        # and the parts made so far of the segment in flight, as a crash would leave them
        assert [(s.msn, len(s.parts)) for s in recorded if not s.complete] == [
            (nxt, broadcast.last_part[1] + 1)  # type: ignore[index]
        ]
