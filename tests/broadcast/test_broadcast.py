"""The Broadcast object itself: lifecycle, the Opus option, the mixer's clock, cost per tick."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from tests.broadcast.conftest import snapshot
from tests.broadcast.hls import (
    RATE,
    T0,
    TICK,
    attributes,
    decode,
    dominant_hz,
    media_extent,
    parse_playlist,
    probe,
    ticks,
    tone,
)
from tribune.broadcast import Broadcast, BroadcastClosed, Recording


async def test_close_is_idempotent_and_pushing_afterwards_is_refused(tmp_path: Path) -> None:
    """close() twice is fine (and the context manager closes); a push after close raises."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        for pcm, wallclock in ticks(tone(440, 1)):
            broadcast.push(pcm, wallclock)
    assert broadcast.closed
    await broadcast.close()
    await asyncio.wait_for(broadcast.sync(), 1)
    with pytest.raises(BroadcastClosed):
        broadcast.push(np.zeros(TICK, np.float32), T0)
    recording = Recording.open(tmp_path / "rec")
    assert recording.ended
    assert len(recording.segments) == 1


async def test_push_rejects_audio_that_is_not_mono(tmp_path: Path) -> None:
    """A 2-D array (say, stereo) is refused rather than encoded as noise."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        with pytest.raises(ValueError, match="1-D"):
            broadcast.push(np.zeros((2, TICK), np.float32), T0)


async def test_opus_option_plays_in_ffmpeg_with_parts_of_whole_opus_frames(tmp_path: Path) -> None:
    """codec="opus": the playlist plays as Opus at 440 Hz; parts are 17 x 20 ms frames."""
    async with Broadcast(tmp_path / "rec", codec="opus") as broadcast:
        for pcm, wallclock in ticks(tone(440, 5)):
            broadcast.push(pcm, wallclock)
    snap = snapshot(broadcast, tmp_path / "served")
    assert snap.playlist.ended
    pt = float(attributes(snap.playlist.tags["EXT-X-PART-INF"])["PART-TARGET"])
    assert pt == 0.34
    full_parts = [p for s in snap.playlist.segments for p in s.parts][:-1]
    assert full_parts
    assert all(p.duration == 0.34 for p in full_parts)

    audio = decode(snap.directory / "live.m3u8")
    assert abs(len(audio) / RATE - 5.0) <= pt
    assert abs(dominant_hz(audio, 0.5, 4.5) - 440) < 1
    first = snap.directory / "first.mp4"
    first.write_bytes(broadcast.init_bytes() + (snap.directory / "seg0.m4s").read_bytes())
    assert probe(first)["codec_name"] == "opus"
    start, end = media_extent(first)
    assert abs(end - start - snap.playlist.segments[0].duration) < 1e-4

    recording = Recording.open(tmp_path / "rec")
    assert probe(recording.export_m4a(1.0, 3.0))["codec_name"] == "opus"


async def test_program_date_time_follows_the_mixers_clock_not_the_sample_count(
    tmp_path: Path,
) -> None:
    """If the mixer's wall clock runs 0.1 % fast, PDTs advance 0.1 % faster than the media."""
    rate = 1.001
    async with Broadcast(tmp_path / "rec") as broadcast:
        for i, (pcm, _) in enumerate(ticks(tone(440, 12))):
            broadcast.push(pcm, T0 + i * TICK / RATE * rate)
        segments = parse_playlist(broadcast.playlist()).segments
    assert len(segments) >= 5
    for before, after in itertools.pairwise(segments[:-1]):
        assert before.program_date_time is not None
        assert after.program_date_time is not None
        step = after.program_date_time - before.program_date_time
        assert abs(step - before.duration * rate) < 0.0015


async def test_a_push_costs_a_small_fraction_of_a_tick(tmp_path: Path) -> None:
    """Encoding and packaging one 20 ms tick on the event loop takes well under 1 ms on average."""
    feed = ticks(tone(440, 20))
    async with Broadcast(tmp_path / "rec") as broadcast:
        started = time.perf_counter()
        for pcm, wallclock in feed:
            broadcast.push(pcm, wallclock)
        mean = (time.perf_counter() - started) / len(feed)
    assert mean < 0.001, f"{mean * 1e6:.0f} µs per push"
