"""Plain live HLS with 3 s segments (what X Spaces serves), for the latency benchmark."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.broadcast.conftest import snapshot
from tests.broadcast.hls import RATE, decode, dominant_hz, parse_playlist, ticks, tone
from tribune.broadcast import Broadcast, Recording

SEGMENT_S = 9 * 16 * 1024 / RATE  # nine 0.341 s AAC parts: 3.072 s


async def test_nine_parts_per_segment_without_low_latency_is_plain_hls(tmp_path: Path) -> None:
    """parts_per_segment=9, low_latency=False: 3.072 s segments, TARGETDURATION 3, no LL tags,
    the same media and recording; ffmpeg plays it."""
    async with Broadcast(tmp_path / "rec", parts_per_segment=9, low_latency=False) as broadcast:
        assert broadcast.default_timeout == 9.0
        for pcm, wallclock in ticks(tone(440, 10)):
            broadcast.push(pcm, wallclock)
        live_text = broadcast.playlist()
    live = parse_playlist(live_text)
    assert live.tags["EXT-X-TARGETDURATION"] == "3"
    assert live.tags["EXT-X-VERSION"] == "7"
    assert "EXT-X-SERVER-CONTROL" not in live.tags
    assert "EXT-X-PART-INF" not in live.tags
    assert "#EXT-X-PART:" not in live_text
    assert live.preload_hint is None
    assert not live.open_parts
    assert not live.ended
    assert [s.uri for s in live.segments] == ["seg0.m4s", "seg1.m4s", "seg2.m4s"]
    assert all(abs(s.duration - SEGMENT_S) < 1e-4 for s in live.segments)
    for before, after in itertools.pairwise(live.segments):
        assert before.program_date_time is not None
        assert after.program_date_time is not None
        assert abs(after.program_date_time - before.program_date_time - SEGMENT_S) < 0.0015

    snap = snapshot(broadcast, tmp_path / "served")
    assert snap.playlist.ended
    assert len(snap.playlist.segments) == 4  # the last one short
    audio = decode(snap.directory / "live.m3u8")
    assert abs(len(audio) / RATE - 10) < 0.35
    assert abs(dominant_hz(audio, 1.0, 9.0) - 440) < 1
    recording = Recording.open(tmp_path / "rec")
    assert recording.ended
    assert [len(s.parts) for s in recording.segments][:3] == [9, 9, 9]


async def test_the_defaults_are_still_low_latency_with_six_part_segments(tmp_path: Path) -> None:
    """No new arguments: 2.048 s segments of 6 parts, PART-INF, server control, a hint."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        for pcm, wallclock in ticks(tone(440, 5)):
            broadcast.push(pcm, wallclock)
        live = parse_playlist(broadcast.playlist())
        assert broadcast.default_timeout == 6.0
    assert live.tags["EXT-X-TARGETDURATION"] == "2"
    assert "EXT-X-PART-INF" in live.tags
    assert "CAN-BLOCK-RELOAD=YES" in live.tags["EXT-X-SERVER-CONTROL"]
    assert live.preload_hint is not None
    assert all(len(s.parts) == 6 for s in live.segments)
