"""Blocking playlist reloads and preload-hinted parts, as the HTTP layer will use them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.broadcast.hls import media_extent, parse_playlist, ticks, tone
from tribune.broadcast import BadBlockingRequest, Broadcast
from tribune.exceptions import InvalidInput

Feed = Iterator[tuple[npt.NDArray[np.float32], float]]
TICK_SECONDS = 0.02


def feed(seconds: float = 30) -> Feed:
    return iter(ticks(tone(440, seconds)))


def push(broadcast: Broadcast, source: Feed, count: int) -> None:
    for _ in range(count):
        broadcast.push(*next(source))


def after(position: tuple[int, int]) -> tuple[int, int]:
    msn, part = position
    return (msn, part + 1) if part < 5 else (msn + 1, 0)


async def _push_until(
    broadcast: Broadcast, source: Feed, made: Callable[[], bool], waiter: asyncio.Task[Any]
) -> float:
    """Push ticks until ``made()`` holds, checking the waiter stays blocked until then.

    Returns the time the push that made it returned.
    """
    while True:
        broadcast.push(*next(source))
        pushed = time.perf_counter()
        if made():
            return pushed
        for _ in range(3):  # let the waiter run if it (wrongly) could
            await asyncio.sleep(0)
        assert not waiter.done(), "returned before the media existed"


async def test_blocked_reload_for_next_part_returns_within_a_tick_of_the_push(
    tmp_path: Path,
) -> None:
    """wait_for(msn, part) on a part not yet made returns less than one tick after it is pushed."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        source = feed()
        push(broadcast, source, 60)
        assert broadcast.last_part is not None
        msn, part = after(broadcast.last_part)
        woke: list[float] = []

        async def reload() -> None:
            await broadcast.wait_for(msn, part, timeout=5)
            woke.append(time.perf_counter())

        task = asyncio.create_task(reload())
        await asyncio.sleep(0)
        last = broadcast.last_part
        pushed = await _push_until(broadcast, source, lambda: broadcast.last_part != last, task)
        await asyncio.wait_for(task, TICK_SECONDS)
        assert woke[0] - pushed < TICK_SECONDS
        assert f'URI="part{msn}.{part}.m4s"' in broadcast.playlist()


async def test_blocked_reload_for_a_segment_returns_when_the_segment_completes(
    tmp_path: Path,
) -> None:
    """wait_for(msn) without a part returns when segment msn is complete, not at its first part."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        source = feed()
        push(broadcast, source, 10)
        msn = broadcast.next_msn
        task = asyncio.create_task(broadcast.wait_for(msn, None, timeout=5))
        await asyncio.sleep(0)
        pushed = await _push_until(broadcast, source, lambda: broadcast.next_msn > msn, task)
        await asyncio.wait_for(task, TICK_SECONDS)
        assert time.perf_counter() - pushed < TICK_SECONDS
        assert parse_playlist(broadcast.playlist()).segments[-1].msn == msn


@pytest.mark.parametrize(
    ("msn", "part", "message"),
    [
        (-1, None, "negative"),
        (0, -1, "negative"),
        (4, None, "more than two segments past"),
        (4, 0, "more than two segments past"),
        (1, 30, "parts past the newest"),
    ],
)
async def test_negative_or_too_far_requests_are_rejected(
    tmp_path: Path, msn: int, part: int | None, message: str
) -> None:
    """Negative numbers, msn beyond next+2 and parts beyond the advance limit raise (400)."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        push(broadcast, feed(), 150)  # 3 s: segment 0 done, segment 1 filling
        assert broadcast.next_msn == 1
        with pytest.raises(BadBlockingRequest, match=message) as raised:
            await broadcast.wait_for(msn, part, timeout=5)
        assert isinstance(raised.value, InvalidInput)
        if part is not None:
            with pytest.raises(BadBlockingRequest, match=message):
                await broadcast.wait_part(msn, part, timeout=5)


async def test_requests_at_the_limit_are_held_not_rejected(tmp_path: Path) -> None:
    """msn = next + 2 is legal: held until the timeout, then returns without error."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        push(broadcast, feed(), 150)
        started = time.perf_counter()
        await broadcast.wait_for(broadcast.next_msn + 2, None, timeout=0.05)
        assert 0.05 <= time.perf_counter() - started < 0.5


async def test_blocked_reload_returns_after_its_timeout_when_nothing_comes(tmp_path: Path) -> None:
    """With no audio, wait_for returns (no error) at its timeout; the default is 3 targets."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        started = time.perf_counter()
        await broadcast.wait_for(0, 0, timeout=0.1)
        assert 0.1 <= time.perf_counter() - started < 0.6
        target = int(parse_playlist(broadcast.playlist()).tags["EXT-X-TARGETDURATION"])
        assert broadcast.default_timeout == 3 * target


async def test_preload_hinted_part_is_held_until_made_then_served(tmp_path: Path) -> None:
    """A request for the PRELOAD-HINT part waits for it and returns bytes that play as that part."""
    async with Broadcast(tmp_path / "rec") as broadcast:
        source = feed()
        push(broadcast, source, 40)
        hint = parse_playlist(broadcast.playlist()).preload_hint
        assert hint is not None
        assert hint["TYPE"] == "PART"
        msn, index = (
            int(x) for x in hint["URI"].removeprefix("part").removesuffix(".m4s").split(".")
        )
        assert broadcast.part_bytes(msn, index) is None
        task = asyncio.create_task(broadcast.wait_part(msn, index, timeout=5))
        await asyncio.sleep(0)
        await _push_until(
            broadcast, source, lambda: broadcast.part_bytes(msn, index) is not None, task
        )
        data = await asyncio.wait_for(task, TICK_SECONDS)
        assert data is not None
        assert data == broadcast.part_bytes(msn, index)
        listed = parse_playlist(broadcast.playlist()).open_parts[index]
        assert listed.uri == hint["URI"]
        path = tmp_path / "part.mp4"
        path.write_bytes(broadcast.init_bytes() + data)
        start, end = media_extent(path)
        assert abs(end - start - listed.duration) < 1e-4


async def test_close_releases_blocked_requests_and_ends_the_playlist(tmp_path: Path) -> None:
    """At close, the hinted part is flushed to its waiter, others return, the playlist ends."""
    broadcast = Broadcast(tmp_path / "rec")
    push(broadcast, feed(), 40)
    hint = parse_playlist(broadcast.playlist()).preload_hint
    assert hint is not None
    msn, index = (int(x) for x in hint["URI"].removeprefix("part").removesuffix(".m4s").split("."))
    flushed = asyncio.create_task(broadcast.wait_part(msn, index, timeout=5))
    beyond = asyncio.create_task(broadcast.wait_for(msn + 1, None, timeout=5))
    await asyncio.sleep(0)
    await broadcast.close()
    data, _ = await asyncio.wait_for(asyncio.gather(flushed, beyond), 1)
    assert data is not None
    assert data[4:8] == b"moof"
    playlist = parse_playlist(broadcast.playlist())
    assert playlist.ended
    assert playlist.preload_hint is None
    assert await broadcast.wait_part(msn + 1, 0, timeout=5) is None
