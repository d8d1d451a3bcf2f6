"""The mix without the network: local sources, the limiter, the clock, levels, buffers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from tests.stage.conftest import FRAME, RATE, Pcm, Program, amplitude, until
from tribune.stage import Stage
from tribune.stage.jitter import JitterBuffer
from tribune.stage.mixer import Mixer


def sine(freq: float, amplitude: float) -> Callable[[int], Pcm]:
    """A local source: a continuous sine, one tick at a time."""
    done = 0

    def source(n: int) -> Pcm:
        nonlocal done
        t = (np.arange(n) + done) / RATE
        done += n
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return source


def silence(n: int) -> Pcm:
    return np.zeros(n, np.float32)


async def test_thirteen_full_scale_speakers_do_not_clip(stage: Stage, program: Program) -> None:
    """13 full-scale in-phase tones: program peak <= 1, loud, and still a clean sine."""
    for i in range(13):
        stage.add_local_source(f"u{i}", sine(440, 1.0))
    start = time.time() + 0.04
    await until(lambda: program.since(start).size >= RATE // 2, 3, "0.5 s of program")
    mix = program.since(start)
    assert np.abs(mix).max() <= 1.0
    assert np.sqrt(np.mean(mix**2)) > 0.5
    settled = mix[RATE // 10 :]  # after the limiter's attack
    fundamental = amplitude(settled, 440)
    distortion = max(amplitude(settled, 440 * h) for h in (2, 3, 5, 7))
    assert distortion < 0.01 * fundamental, "no hard clipping: harmonics stay below -40 dB"


async def test_silence_in_zeros_out_and_ticks_keep_time(stage: Stage, program: Program) -> None:
    """With nobody (then a silent source) on stage, zeros flow at 50 ticks per second."""
    await until(lambda: bool(program.ticks), 1, "first tick")
    first = len(program.ticks)
    await asyncio.sleep(1.0)  # the interval being measured, not a wait for a condition
    assert abs(len(program.ticks) - first - 50) <= 2
    stage.add_local_source("quiet", silence)
    mark = len(program.ticks)
    await until(lambda: len(program.ticks) >= mark + 10, 1, "ten more ticks")
    pcms = [pcm for _, pcm in program.ticks]
    assert all(pcm.shape == (FRAME,) and pcm.dtype == np.float32 for pcm in pcms)
    assert not np.any(np.concatenate(pcms))
    steps = np.diff([at for at, _ in program.ticks])
    assert np.allclose(steps, 0.02, atol=1e-6), "wallclock advances exactly one tick per tick"


async def test_a_stalled_loop_catches_up_instead_of_drifting(program: Program) -> None:
    """After the event loop stalls 200 ms, the missed ticks are produced: still 50 per second."""
    async with Stage("sp_stall", program):
        await until(lambda: bool(program.ticks), 1, "first tick")
        began, first = time.time(), len(program.ticks)
        time.sleep(0.2)  # noqa: ASYNC251 - the stall under test
        await asyncio.sleep(began + 1.0 - time.time())
        assert abs(len(program.ticks) - first - 50) <= 2
    starts = [at for at, _ in program.ticks]
    assert np.allclose(np.diff(starts), 0.02, atol=1e-6)
    assert abs(starts[-1] + 0.02 - time.time()) < 0.1, "program time tracks the wall clock"


async def test_levels_show_who_is_talking(stage: Stage) -> None:
    """A speaking source reads > 0.1, a silent one ~0, and a muted one 0."""
    stage.add_local_source("ann", sine(300, 0.3))
    stage.add_local_source("bob", silence)
    await until(lambda: stage.levels().get("ann", 0) > 0.1, 1, "ann's level rises")
    await asyncio.sleep(0.3)  # fill the 300 ms window
    levels = stage.levels()
    assert 0.7 < levels["ann"] < 0.85  # a 0.3 sine is -13.5 dBFS
    assert levels["bob"] < 0.01
    stage.set_muted("ann", True)
    assert stage.levels()["ann"] == 0.0
    stage.remove_local_source("ann")
    assert set(stage.levels()) == {"bob"}


async def test_a_broken_source_or_sink_does_not_stop_the_stage(stage: Stage) -> None:
    """A source that raises is removed, a wrong-sized one too; the others keep playing."""

    def broken(n: int) -> Pcm:
        raise RuntimeError("demo voice crashed")

    stage.add_local_source("ann", sine(300, 0.3))
    stage.add_local_source("bad", broken)
    stage.add_local_source("short", lambda n: np.zeros(n // 2, np.float32))
    await until(lambda: set(stage.levels()) == {"ann"}, 1, "broken sources removed")
    await until(lambda: stage.levels()["ann"] > 0.1, 1, "ann still heard")


async def test_a_failing_program_sink_does_not_stop_the_ticks() -> None:
    """on_program raising is logged, and ticks keep coming."""
    calls: list[float] = []

    def sink(pcm: Pcm, wallclock: float) -> None:
        calls.append(wallclock)
        raise RuntimeError("encoder down")

    async with Stage("sp_sink", sink):
        await until(lambda: len(calls) >= 5, 1, "five ticks")


def test_mix_minus_is_everyone_but_the_listener() -> None:
    """Mixer: program is the sum; each listener's mix-minus leaves them out."""
    mixer = Mixer()
    ann, bob, cat = (np.full(FRAME, v, np.float32) for v in (0.1, 0.2, 0.3))
    program, minus = mixer.mix({"ann": ann, "bob": bob, "cat": cat}, ["ann", "bob", "dan"])
    assert np.allclose(program, 0.6)
    assert np.allclose(minus["ann"], 0.5)
    assert np.allclose(minus["bob"], 0.4)
    assert np.allclose(minus["dan"], 0.6), "a silent listener hears everyone"


def test_limiter_recovers_after_a_loud_burst() -> None:
    """Gain falls at once on a loud burst and comes back within a second after it."""
    mixer = Mixer()
    loud = {"ann": np.full(FRAME, 5.0, np.float32)}
    quiet = {"ann": np.full(FRAME, 0.5, np.float32)}
    program, _ = mixer.mix(loud, [])
    assert np.abs(program).max() <= 1.0
    assert program[-1] < 0.9
    for _ in range(50):
        program, _ = mixer.mix(quiet, [])
    assert np.allclose(program, 0.5, atol=0.01)


def test_jitter_buffer_fills_before_playing_and_bounds_latency() -> None:
    """Plays once ``target`` is buffered; an underrun is silence; an overrun drops the oldest."""
    jb = JitterBuffer(target=2 * FRAME, limit=4 * FRAME)
    block = [np.full(FRAME, i, np.float32) for i in range(10)]
    jb.push(block[0])
    assert jb.pull(FRAME) is None, "still filling"
    jb.push(block[1])
    pulled = jb.pull(FRAME)
    assert pulled is not None
    assert pulled[0] == 0
    pulled = jb.pull(FRAME)
    assert pulled is not None
    assert pulled[0] == 1
    assert jb.pull(FRAME) is None
    assert jb.underruns == 1
    for b in block[2:7]:  # five blocks: one over the limit
        jb.push(b)
    assert len(jb) == 2 * FRAME
    assert jb.dropped == 3 * FRAME
    pulled = jb.pull(FRAME)
    assert pulled is not None
    assert pulled[0] == 5, "the oldest went"
