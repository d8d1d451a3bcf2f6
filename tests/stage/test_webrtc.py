"""Speakers on real aiortc peer connections: program, mix-minus, mute, kick, delay."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from tests.stage.conftest import (
    RATE,
    Connect,
    Program,
    Speaker,
    ToneTrack,
    amplitude,
    until,
)
from tribune.stage import Stage, TooManySessions
from tribune.stage.tracks import (
    bypass_receive_buffer,
    shorten_receive_buffer,
    tap_decoded_frames,
)

PRESENT = 0.05  # tones are sent at 0.3
ABSENT = 0.003  # -40 dB below a present tone


def heard_enough(speaker: Speaker, since: float, seconds: float) -> Callable[[], bool]:
    return lambda: speaker.heard_since(since).size >= seconds * RATE


async def test_program_has_both_and_each_speaker_hears_only_the_other(
    stage: Stage, program: Program, connected: Connect
) -> None:
    """Two speakers at 440/660 Hz: program has both; each one's mix-minus has only the other."""
    ann = await connected("ann", 440)
    bob = await connected("bob", 660)
    start = time.time() + 0.3  # let the jitter buffers fill
    await until(heard_enough(ann, start, 1.5), 5, "ann hears 1.5 s")
    await until(heard_enough(bob, start, 1.5), 5, "bob hears 1.5 s")

    mix = program.since(start)
    assert amplitude(mix, 440) > PRESENT
    assert amplitude(mix, 660) > PRESENT
    to_ann, to_bob = ann.heard_since(start), bob.heard_since(start)
    assert amplitude(to_ann, 660) > PRESENT, "ann hears bob"
    assert amplitude(to_ann, 440) < ABSENT, "ann does not hear herself"
    assert amplitude(to_bob, 440) > PRESENT, "bob hears ann"
    assert amplitude(to_bob, 660) < ABSENT, "bob does not hear himself"


def _windows(program: Program, start: float, end: float) -> list[tuple[float, np.ndarray]]:
    """Two-tick (40 ms) windows of the program whose first tick is in [start, end)."""
    ticks = program.ticks
    return [
        (at, np.concatenate([pcm, ticks[i + 1][1]]))
        for i, (at, pcm) in enumerate(ticks[:-1])
        if start <= at < end
    ]


async def test_mute_takes_a_speaker_out_of_the_program_and_unmute_brings_them_back(
    stage: Stage, program: Program, connected: Connect
) -> None:
    """set_muted removes 660 Hz from the program within 1 s, keeps 440; unmute restores it."""
    await connected("ann", 440, "sendonly")
    await connected("bob", 660, "sendonly")
    await until(lambda: amplitude(program.since(time.time() - 0.2), 660) > PRESENT, 3, "bob on")

    muted_at = time.time()
    stage.set_muted("bob", True)
    await until(lambda: program.ticks[-1][0] > muted_at + 1.05, 3, "1 s of program")
    windows = _windows(program, muted_at - 0.1, muted_at + 1.0)
    has_bob = [amplitude(pcm, 660) > ABSENT for _, pcm in windows]
    gone_at = next(at for (at, _), bob in zip(windows, has_bob, strict=True) if not bob)
    after = [pcm for at, pcm in windows if at >= gone_at]
    assert all(amplitude(pcm, 660) < ABSENT for pcm in after), "bob stays out"
    assert all(amplitude(pcm, 440) > PRESENT for pcm in after), "ann stays in"
    assert gone_at - muted_at < 1.0
    print(f"\nmute took {1000 * (gone_at - muted_at):.0f} ms to reach the program")

    unmuted_at = time.time()
    stage.set_muted("bob", False)
    await until(lambda: program.ticks[-1][0] > unmuted_at + 1.05, 3, "1 s of program")
    back = _windows(program, unmuted_at, unmuted_at + 1.0)
    back_at = next(at for at, pcm in back if amplitude(pcm, 660) > PRESENT)
    assert back_at - unmuted_at < 1.0
    print(f"unmute took {1000 * (back_at - unmuted_at):.0f} ms")


async def test_sendonly_offer_like_a_whip_encoder_is_answered_recvonly(
    stage: Stage, program: Program, speakers: Callable[..., Speaker]
) -> None:
    """A sendonly offer is answered recvonly, gets no track back, and is heard in the program."""
    encoder = speakers(ToneTrack(440), "sendonly")
    _, answer = await encoder.publish(stage, "obs")
    audio = answer.split("m=audio", 1)[1]
    assert "a=recvonly" in audio
    assert "a=sendrecv" not in audio
    assert "a=candidate:" in answer, "the answer carries its ICE candidates (no trickle)"
    await until(lambda: amplitude(program.since(time.time() - 0.2), 440) > PRESENT, 5, "440 Hz")
    assert encoder.tracks == []


async def test_kick_closes_the_speakers_connection_within_a_second(
    program: Program, speakers: Callable[..., Speaker]
) -> None:
    """kick() closes the user's peer connection: the client sees it closed within 1 s."""
    states: list[tuple[str, str]] = []
    async with Stage(
        "sp_kick", program, on_session_state=lambda _, a, b: states.append((a, b))
    ) as stage:
        ann = speakers(ToneTrack(440))
        await ann.publish(stage, "ann")
        await until(lambda: ann.pc.connectionState == "connected", 5, "ann connects")

        kicked_at = time.monotonic()
        await stage.kick("ann")
        took = await until(lambda: ann.pc.connectionState in ("closed", "failed"), 1, "closed")
        print(f"\nkick closed the client's connection in {1000 * took:.0f} ms (+ kick call)")
        assert time.monotonic() - kicked_at < 1.0
        assert stage.sessions() == {}
        assert states == [
            ("new", "connecting"),
            ("connecting", "connected"),
            ("connected", "closed"),
        ]


async def test_republish_replaces_the_session_and_unpublish_ends_it(
    stage: Stage, connected: Connect, speakers: Callable[..., Speaker]
) -> None:
    """A user has one session: a new publish replaces the old; unpublish ends it once."""
    first = await connected("ann", 440)
    (old_id,) = stage.sessions()
    second = speakers(ToneTrack(440))
    new_id, _ = await second.publish(stage, "ann")
    assert stage.sessions() == {new_id: "ann"}
    await until(lambda: first.pc.connectionState == "closed", 2, "old session closed")

    assert await stage.unpublish(new_id) is True
    assert await stage.unpublish(new_id) is False
    assert await stage.unpublish(old_id) is False
    assert stage.sessions() == {}


async def test_stage_takes_a_bounded_number_of_speakers(
    program: Program, speakers: Callable[..., Speaker]
) -> None:
    """Past max_sessions a new speaker is refused with a clear message; a returning one is not."""
    async with Stage("sp_small", program, max_sessions=2) as stage:
        await speakers(ToneTrack(0)).publish(stage, "ann")
        await speakers(ToneTrack(0)).publish(stage, "bob")
        cat = speakers(ToneTrack(0))
        offer = await cat.offer()
        with pytest.raises(TooManySessions, match="has 2 speakers connected, the most it takes"):
            await stage.publish("cat", offer)
        await speakers(ToneTrack(0)).publish(stage, "bob")  # bob reconnecting takes his slot
        assert sorted(stage.sessions().values()) == ["ann", "bob"]


def passed(records: list[tuple[float, np.ndarray]], t: float) -> Callable[[], bool]:
    """True once the timestamped ``records`` reach past ``t``."""
    return lambda: bool(records) and records[-1][0] > t


def _onset(pcm: np.ndarray, threshold: float = 0.2) -> int | None:
    loud = np.flatnonzero(np.abs(pcm) > threshold)
    return int(loud[0]) if loud.size else None


async def test_speaker_to_speaker_delay(stage: Stage, program: Program, connected: Connect) -> None:
    """A click from ann reaches the program, and bob's ear, well within 200 ms (measured)."""
    ann = await connected("ann", 0)
    bob = await connected("bob", 0)
    track = ann.pc.getTransceivers()[0].sender.track
    assert isinstance(track, ToneTrack)
    await until(heard_enough(bob, time.time(), 0.3), 5, "bob hears the stage")

    to_program: list[float] = []
    to_bob: list[float] = []
    for _ in range(5):
        track.click()
        await until(lambda: len(track.clicks) > len(to_program), 1, "click sent")
        sent = track.clicks[-1]
        await until(passed(program.ticks, sent + 0.3), 2, "program after the click")
        await until(passed(bob.heard, sent + 0.4), 2, "bob hears past the click")

        at_program = next(
            at + onset / RATE
            for at, pcm in program.ticks
            if at > sent - 0.1 and (onset := _onset(pcm)) is not None
        )
        at_bob = next(
            at + onset / RATE
            for at, pcm in bob.heard
            if at > sent and (onset := _onset(pcm)) is not None
        )
        to_program.append(at_program - sent)
        to_bob.append(at_bob - sent)

    server, end_to_end = np.median(to_program), np.median(to_bob)
    print(
        f"\nclick ann -> program (ingest, jitter buffer, mix): {1000 * server:.0f} ms median "
        f"({', '.join(f'{1000 * d:.0f}' for d in to_program)})"
        f"\nclick ann -> bob's ear (+ mix-minus encode, network, bob's aiortc jitter buffer): "
        f"{1000 * end_to_end:.0f} ms median ({', '.join(f'{1000 * d:.0f}' for d in to_bob)})"
    )
    assert 0 < server < end_to_end
    assert server < 0.2


async def test_aiortc_audio_receive_buffer_is_shortened(speakers: Callable[..., Speaker]) -> None:
    """The stage can still find aiortc's 80 ms receive buffer to shorten (see tracks.py)."""
    peer = speakers(None)
    transceiver = peer.pc.addTransceiver("audio", direction="recvonly")
    assert shorten_receive_buffer(transceiver.receiver)


async def test_speakers_who_are_not_talking_share_one_mix_minus_encode(
    stage: Stage, program: Program, connected: Connect
) -> None:
    """Ann talks, Bob and Cat send silence: two encodes a tick (the common mix, and Ann's
    own), not three; Bob and Cat hear Ann, Ann hears nobody. When Bob talks too, three."""
    ann = await connected("ann", 440)
    bob = await connected("bob", 0)
    cat = await connected("cat", 0)
    start = time.time() + 0.5  # jitter buffers full, the gate closed for the silent ones
    for who in (ann, bob, cat):
        await until(heard_enough(who, start, 1.0), 5, "1 s heard")
    before = stage.stats()
    await until(lambda: stage.stats().ticks >= before.ticks + 50, 3, "50 ticks")
    after = stage.stats()
    per_tick = (after.encodes - before.encodes) / (after.ticks - before.ticks)
    assert per_tick == pytest.approx(2, abs=0.1)
    assert amplitude(bob.heard_since(start), 440) > PRESENT
    assert amplitude(cat.heard_since(start), 440) > PRESENT
    assert amplitude(ann.heard_since(start), 440) < ABSENT, "ann does not hear herself"

    track = bob.pc.getTransceivers()[0].sender.track
    assert isinstance(track, ToneTrack)
    track.freq = 660
    talking = time.time() + 0.5
    await until(heard_enough(ann, talking, 1.0), 5, "ann hears 1 s more")
    before = stage.stats()
    await until(lambda: stage.stats().ticks >= before.ticks + 50, 3, "50 ticks")
    after = stage.stats()
    assert (after.encodes - before.encodes) / (after.ticks - before.ticks) == pytest.approx(
        3, abs=0.1
    )
    assert amplitude(ann.heard_since(talking), 660) > PRESENT, "ann hears bob"
    assert amplitude(bob.heard_since(talking), 660) < ABSENT, "bob does not hear himself"
    assert amplitude(cat.heard_since(talking), 660) > PRESENT
    assert stage.stats().decode_errors == 0


async def test_aiortc_decoder_queue_can_be_tapped(speakers: Callable[..., Speaker]) -> None:
    """The stage can still find aiortc's decoder queue to take frames from (see tracks.py)."""
    peer = speakers(ToneTrack(440))
    transceiver = peer.pc.getTransceivers()[0]
    assert tap_decoded_frames(transceiver.receiver, lambda _: None)


async def test_aiortc_receive_buffer_can_be_bypassed(speakers: Callable[..., Speaker]) -> None:
    """The stage can still find aiortc's receive buffer to replace (see tracks.py)."""
    peer = speakers(ToneTrack(440))
    assert bypass_receive_buffer(peer.pc.getTransceivers()[0].receiver)
