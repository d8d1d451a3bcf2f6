"""Fixtures: real ffmpeg on the machine, and one recorded program shared by the read-only tests."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.broadcast.hls import RATE, TICK, Playlist, parse_playlist, program, ticks
from tribune.broadcast import Broadcast

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def ffmpeg() -> None:
    """ffmpeg and ffprobe are the independent players; install them if they are missing."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        subprocess.run(["bash", str(ROOT / "scripts/system-deps.sh"), "ffmpeg"], check=True)
    assert shutil.which("ffmpeg")
    assert shutil.which("ffprobe")


@dataclass
class Snapshot:
    """The live playlist at one moment and every file it names, written where a player can read."""

    directory: Path
    text: str
    playlist: Playlist


def snapshot(broadcast: Broadcast, directory: Path) -> Snapshot:
    """Save the live playlist and each URI it names, as the HTTP layer would serve them."""
    directory.mkdir(parents=True)
    text = broadcast.playlist()
    (directory / "live.m3u8").write_text(text)
    (directory / "init.mp4").write_bytes(broadcast.init_bytes())
    for m in re.finditer(r"seg(\d+)\.m4s", text):
        data = broadcast.segment_bytes(int(m.group(1)))
        assert data is not None, m.group(0)
        (directory / m.group(0)).write_bytes(data)
    for m in re.finditer(r"part(\d+)\.(\d+)\.m4s", text):
        data = broadcast.part_bytes(int(m.group(1)), int(m.group(2)))
        if data is None:  # the preload hint: not made yet
            assert f'PRELOAD-HINT:TYPE=PART,URI="{m.group(0)}"' in text
            continue
        (directory / m.group(0)).write_bytes(data)
    return Snapshot(directory, text, parse_playlist(text))


@dataclass
class ProgramRun:
    recording: Path
    #: taken 11 s in: the 660 Hz tone is playing, a segment is part-way filled
    live: Snapshot
    #: taken after close(): the whole program, with ENDLIST
    final: Snapshot
    pushed_seconds: float


@pytest.fixture(scope="session")
def program_run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    """Push the test program faster than real time through one AAC broadcast, once."""
    base = tmp_path_factory.mktemp("program")
    samples = program()

    async def go() -> ProgramRun:
        async with Broadcast(base / "recording") as broadcast:
            live = None
            for i, (pcm, wallclock) in enumerate(ticks(samples)):
                broadcast.push(pcm, wallclock)
                if i == round(11 * RATE / TICK):
                    live = snapshot(broadcast, base / "live")
            await broadcast.close()  # inside the block on purpose: close() twice is fine
            assert live is not None
            final = snapshot(broadcast, base / "final")
        return ProgramRun(base / "recording", live, final, len(samples) / RATE)

    return asyncio.run(go())
