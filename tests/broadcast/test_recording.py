"""The recording on disk: crash safety, replay, clips and .m4a downloads, checked with ffmpeg."""

from __future__ import annotations

import gc
import json
import math
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.broadcast.conftest import ROOT, ProgramRun
from tests.broadcast.hls import (
    RATE,
    T0,
    decode,
    dominant_hz,
    parse_playlist,
    probe,
    rms,
    silence_start,
    ticks,
    tone,
    top_level_boxes,
)
from tribune.broadcast import (
    BadClipRange,
    Broadcast,
    Recording,
    RecordingCorrupt,
    RecordingExists,
    RecordingNotFound,
)
from tribune.exceptions import InvalidInput

AAC_FRAME = 1024 / RATE

CRASHING_CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
from tests.broadcast.hls import ticks, tone
from tribune.broadcast import Broadcast

async def main() -> None:
    broadcast = Broadcast(Path(sys.argv[1]))
    feed = ticks(tone(440, 7.5))
    for pcm, wallclock in feed[:350]:      # 7 s: three segments and parts of the fourth
        broadcast.push(pcm, wallclock)
    await broadcast.sync()
    print(broadcast.next_msn, broadcast.last_part[1] + 1, flush=True)
    for pcm, wallclock in feed[350:365]:   # another part or so, then the power goes
        broadcast.push(pcm, wallclock)
    print(broadcast.last_part[1] + 1, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def write_playlist(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_recording_survives_a_crash_up_to_the_part_in_flight(tmp_path: Path) -> None:
    """After SIGKILL mid-segment, the recording opens and its VOD plays every complete segment
    and every part of the unfinished one that was made: only the part in flight is lost."""
    directory = tmp_path / "rec"
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, str(directory)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    complete, synced, made = (int(x) for x in child.stdout.split())
    assert (complete, synced) == (3, 2)
    assert made > synced

    recording = Recording.open(directory)
    assert not recording.ended
    assert [s.msn for s in recording.segments] == list(range(complete + 1))
    assert all(s.complete for s in recording.segments[:complete])
    unfinished = recording.segments[complete]
    assert not unfinished.complete
    # Every part that was synced is there; parts made just before the kill may be too.
    assert synced <= len(unfinished.parts) <= made
    assert unfinished.uri == "seg3.partial.m4s"
    part = 16 * AAC_FRAME
    parts = len(unfinished.parts)
    assert recording.duration == pytest.approx((complete * 6 + parts) * part, abs=1e-3)
    playlist = recording.vod_playlist()
    parsed = parse_playlist(playlist)
    assert parsed.ended
    assert parsed.segments[-1].uri == "seg3.partial.m4s"
    assert parsed.segments[-1].byterange is not None
    audio = decode(write_playlist(directory, "vod.m3u8", playlist))
    assert abs(len(audio) / RATE - recording.duration) < 1e-3
    assert abs(dominant_hz(audio, 0.5, 6.0) - 440) < 1
    assert abs(dominant_hz(audio, 6.2, 6.8) - 440) < 1  # from the unfinished segment
    clip = recording.export_m4a(6.0, recording.duration)
    assert abs(dominant_hz(decode(clip), 0.1, 0.6) - 440) < 1


async def test_a_dropped_broadcast_leaves_a_crash_like_recording_and_no_thread(
    tmp_path: Path,
) -> None:
    """A Broadcast dropped without close() keeps its complete segments, unended; its thread ends."""
    directory = tmp_path / "rec"
    broadcast = Broadcast(directory)
    for pcm, wallclock in ticks(tone(440, 5)):
        broadcast.push(pcm, wallclock)
    await broadcast.sync()
    complete = broadcast.next_msn
    del broadcast
    gc.collect()
    writers = [t for t in threading.enumerate() if t.name == f"recording-{directory.name}"]
    for thread in writers:
        thread.join(timeout=5)
        assert not thread.is_alive()

    recording = Recording.open(directory)
    assert not recording.ended
    assert complete == 2
    assert [s.complete for s in recording.segments] == [True, True, False]
    audio = decode(write_playlist(directory, "vod.m3u8", recording.vod_playlist()))
    assert abs(len(audio) / RATE - recording.duration) < 1e-3


async def test_a_failing_disk_stops_the_recording_but_not_the_live_stream(tmp_path: Path) -> None:
    """When segments cannot be written, sync() reports it and listeners still get new parts."""
    directory = tmp_path / "rec"
    feed = ticks(tone(440, 8))
    async with Broadcast(directory) as broadcast:
        for pcm, wallclock in feed[:150]:
            broadcast.push(pcm, wallclock)
        await broadcast.sync()
        shutil.rmtree(directory)
        for pcm, wallclock in feed[150:]:
            broadcast.push(pcm, wallclock)
        with pytest.raises(FileNotFoundError):
            await broadcast.sync()
        assert broadcast.next_msn == 3
        assert broadcast.segment_bytes(2) is not None
        assert "seg2.m4s" in broadcast.playlist()


def test_close_writes_the_short_last_segment_and_marks_the_recording_ended(
    program_run: ProgramRun,
) -> None:
    """After close, the VOD has every segment (the last one short), ENDLIST, and plays in full."""
    recording = Recording.open(program_run.recording)
    assert recording.ended
    durations = [s.duration for s in recording.segments]
    assert len(set(durations[:-1])) == 1
    assert 0 < durations[-1] < durations[0]
    assert abs(recording.duration - program_run.pushed_seconds) < 2 * AAC_FRAME

    text = recording.vod_playlist()
    playlist = parse_playlist(text)
    assert playlist.ended
    assert playlist.tags["EXT-X-PLAYLIST-TYPE"] == "VOD"
    assert playlist.tags["EXT-X-MAP"] == 'URI="init.mp4"'
    assert [s.uri for s in playlist.segments] == [f"seg{i}.m4s" for i in range(len(durations))]
    assert all(s.program_date_time is not None for s in playlist.segments)
    assert abs(sum(s.duration for s in playlist.segments) - recording.duration) < 1e-3

    audio = decode(write_playlist(program_run.recording, "vod.m3u8", text))
    assert abs(len(audio) / RATE - recording.duration) < 1e-3
    assert abs(dominant_hz(audio, 1.0, 7.0) - 440) < 1
    assert rms(audio, 8.2, 8.9) < 0.01
    assert abs(dominant_hz(audio, 9.3, 11.8) - 660) < 1


def test_a_torn_last_index_line_is_ignored_but_a_corrupt_middle_line_is_not(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """A half-written last line (crash during append) is skipped; garbage mid-file is an error.

    The crash here came after the last segment was renamed into place but before its index
    line was whole: its parts, indexed one by one, are still found (in the renamed file).
    """
    directory = tmp_path / "rec"
    shutil.copytree(program_run.recording, directory)
    index = directory / "index.jsonl"
    lines = index.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1]).get("ended") is True
    whole = len(lines) - 2  # lines kept whole: all but the last segment's and the end
    last = json.loads(lines[whole])
    index.write_bytes(b"".join(lines[:whole]) + lines[whole][: len(lines[whole]) // 2])

    recording = Recording.open(directory)
    assert not recording.ended
    assert [s.msn for s in recording.segments] == list(range(last["msn"] + 1))
    assert [s.complete for s in recording.segments].count(False) == 1
    assert recording.segments[-1].uri == f"seg{last['msn']}.m4s"  # found where it was renamed
    assert recording.segments[-1].duration == last["duration"]
    audio = decode(write_playlist(directory, "vod.m3u8", recording.vod_playlist()))
    assert abs(len(audio) / RATE - recording.duration) < 1e-3

    # The last segment's index line and one part line lost: the parts before it remain.
    parts = [n for n, line in enumerate(lines[:whole]) if b'"part"' in line]
    index.write_bytes(b"".join(lines[: parts[-1]]))
    recording = Recording.open(directory)
    assert len(recording.segments[-1].parts) == len(last["parts"]) - 1

    index.write_bytes(b"".join(lines[:1]) + b"{not json\n" + b"".join(lines[2:]))
    with pytest.raises(RecordingCorrupt, match="line 2"):
        Recording.open(directory)


def test_clip_playlist_covers_the_range_to_within_a_part_and_keeps_the_tones(
    program_run: ProgramRun,
) -> None:
    """A 7-10.5 s clip plays 3.5 s plus under a part at each end; the 440 Hz ends at T0 + 8 s."""
    recording = Recording.open(program_run.recording)
    text = recording.clip_playlist(7.0, 10.5)
    playlist = parse_playlist(text)
    assert playlist.ended
    assert playlist.tags["EXT-X-PLAYLIST-TYPE"] == "VOD"
    assert playlist.segments[0].byterange is not None  # starts mid-segment, on a part boundary
    part = 16 * AAC_FRAME
    listed = sum(s.duration for s in playlist.segments)
    assert 3.5 <= listed < 3.5 + 2 * part

    audio = decode(write_playlist(program_run.recording, "clip.m3u8", text))
    assert abs(len(audio) / RATE - listed) < 1e-3
    first_pdt = playlist.segments[0].program_date_time
    assert first_pdt is not None
    assert T0 + 7.0 - part <= first_pdt <= T0 + 7.0
    end_of_440 = silence_start(audio, after_s=0.2)
    assert abs(first_pdt + end_of_440 - (T0 + 8.0)) < 0.010
    assert abs(dominant_hz(audio, 0.0, end_of_440 - 0.05) - 440) < 2.5
    assert abs(dominant_hz(audio, end_of_440 + 1.1, listed) - 660) < 2.5


def test_export_m4a_remuxes_the_whole_recording_into_a_plain_mp4(program_run: ProgramRun) -> None:
    """The download is one non-fragmented AAC .m4a (moov first) with the recording's duration."""
    recording = Recording.open(program_run.recording)
    path = recording.export_m4a()
    assert path.suffix == ".m4a"
    assert path.is_relative_to(program_run.recording)
    boxes = top_level_boxes(path.read_bytes())
    assert boxes[0] == "ftyp"
    assert "moof" not in boxes
    assert boxes.index("moov") < boxes.index("mdat")
    fields = probe(path)
    assert fields["codec_name"] == "aac"
    assert fields["sample_rate"] == "48000"
    assert fields["channels"] == "1"
    assert abs(float(fields["duration"]) - recording.duration) < 1e-3

    audio = decode(path)
    assert abs(len(audio) / RATE - recording.duration) < 1e-3
    assert abs(dominant_hz(audio, 1.0, 7.0) - 440) < 1
    assert abs(dominant_hz(audio, 9.3, 11.8) - 660) < 1


def test_export_m4a_clip_is_trimmed_to_coded_frames_with_the_tones_in_place(
    program_run: ProgramRun,
) -> None:
    """A 7-10.5 s download lasts 3.5 s plus under a frame each end; the tones sit where they did."""
    recording = Recording.open(program_run.recording)
    full = decode(recording.export_m4a())
    end_in_full = silence_start(full, after_s=7.5)

    path = recording.export_m4a(7.0, 10.5)
    assert path.name == "clip-7000-10500.m4a"
    assert "moof" not in top_level_boxes(path.read_bytes())
    fields = probe(path)
    duration = float(fields["duration"])
    assert 3.5 <= duration < 3.5 + 2 * AAC_FRAME
    audio = decode(path)
    end_in_clip = silence_start(audio, after_s=0.2)
    # The clip starts on the frame holding 7.0 s: up to one frame early.
    assert 0 <= end_in_clip - (end_in_full - 7.0) < AAC_FRAME + 0.002
    assert abs(dominant_hz(audio, 0.0, end_in_clip - 0.05) - 440) < 2.5
    assert abs(dominant_hz(audio, end_in_clip + 1.1, duration) - 660) < 2.5


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (-1.0, 5.0, "0 s or later"),
        (5.0, 5.0, "must be after its start"),
        (6.0, 2.0, "must be after its start"),
        (0.0, 301.0, "at most 300 s"),
        (5.0, 13.0, "after the end of the recording"),
        (math.nan, 5.0, "finite"),
    ],
)
def test_bad_clip_ranges_are_rejected_with_a_clear_message(
    program_run: ProgramRun, start: float, end: float, message: str
) -> None:
    """Negative, empty, reversed, over-300 s and past-the-end clips raise BadClipRange (400)."""
    recording = Recording.open(program_run.recording)
    with pytest.raises(BadClipRange, match=message) as raised:
        recording.clip_playlist(start, end)
    assert isinstance(raised.value, InvalidInput)
    with pytest.raises(BadClipRange, match=message):
        recording.export_m4a(start, end)


def test_recordings_are_not_overwritten_and_missing_ones_are_reported(
    program_run: ProgramRun, tmp_path: Path
) -> None:
    """A broadcast refuses a directory that holds a recording; opening an empty one is NotFound."""
    with pytest.raises(RecordingExists):
        Broadcast(program_run.recording)
    with pytest.raises(RecordingNotFound):
        Recording.open(tmp_path)
