"""Offers the stage cannot use are refused before any peer connection exists for them."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiortc import RTCRtpSender

from tests.stage.conftest import Speaker, ToneTrack
from tribune.exceptions import InvalidInput
from tribune.stage import BadOffer, NoAudio, NoOpus, NotSdp, Stage, StageClosed
from tribune.stage.stage import ask_for_dtx


async def refused(stage: Stage, sdp: str, error: type[BadOffer]) -> str:
    with pytest.raises(error) as caught:
        await stage.publish("ann", sdp)
    assert isinstance(caught.value, InvalidInput)
    assert stage.sessions() == {}
    return caught.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello, stage", "must start with 'v=0', not 'hello, stage'"),
        ("", "must start with 'v=0', not ''"),
        ('{"sdp": "v=0"}', "must start with 'v=0'"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n<html>", "line 3 is '<html>'"),
        ("v=0\r\nm=audio\r\n", "malformed media line 'm=audio'"),
        ("v=0\r\n" + "a=x\r\n" * 20_000, "at most 65536 allowed"),
    ],
)
async def test_text_that_is_not_sdp(stage: Stage, text: str, expected: str) -> None:
    """Text that is not SDP is refused with a message that quotes what was wrong."""
    assert expected in await refused(stage, text, NotSdp)


async def test_video_only_offer(stage: Stage, speakers: Callable[..., Speaker]) -> None:
    """A video-only offer is refused: it has no audio m-line."""
    camera = speakers(None)
    camera.pc.addTransceiver("video", direction="sendonly")
    detail = await refused(stage, await camera.offer(), NoAudio)
    assert detail == "The offer has no audio m-line (it offers video); a speaker must send audio."


async def test_data_channel_only_offer(stage: Stage, speakers: Callable[..., Speaker]) -> None:
    """A data-channel-only offer is refused: it has no audio m-line."""
    chat = speakers(None)
    chat.pc.createDataChannel("chat")
    detail = await refused(stage, await chat.offer(), NoAudio)
    assert "(it offers application)" in detail


async def test_listen_only_offer(stage: Stage, speakers: Callable[..., Speaker]) -> None:
    """A recvonly audio offer is refused: a speaker must send."""
    listener = speakers(None)
    listener.pc.addTransceiver("audio", direction="recvonly")
    detail = await refused(stage, await listener.offer(), NoAudio)
    assert "audio m-line is recvonly" in detail
    assert "sendonly or sendrecv" in detail


async def test_audio_without_opus(stage: Stage, speakers: Callable[..., Speaker]) -> None:
    """An audio m-line offering only G.711 is refused, naming what it did offer."""
    phone = speakers(ToneTrack(440))
    (transceiver,) = phone.pc.getTransceivers()
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences(
        [c for c in codecs if c.mimeType in ("audio/PCMU", "audio/PCMA")]
    )
    detail = await refused(stage, await phone.offer(), NoOpus)
    assert (
        detail
        == "The offer's audio m-line offers PCMU, PCMA but not Opus; the stage takes Opus only."
    )


@pytest.mark.parametrize("attribute", ["fingerprint", "ice-ufrag", "ice-pwd", "setup"])
async def test_offer_without_webrtc_essentials(
    stage: Stage, speakers: Callable[..., Speaker], attribute: str
) -> None:
    """An offer without ICE credentials, DTLS fingerprint or setup role is refused up front."""
    offer = await speakers(ToneTrack(440)).offer()
    stripped = re.sub(rf"a={attribute}:.*\r\n", "", offer)
    assert stripped != offer
    assert f"has no a={attribute};" in await refused(stage, stripped, BadOffer)


async def test_audio_and_video_offer_gets_audio_only(
    stage: Stage, speakers: Callable[..., Speaker]
) -> None:
    """An encoder offering audio and video is accepted; the video m-line is declined."""
    encoder = speakers(ToneTrack(440), "sendonly")
    encoder.pc.addTransceiver("video", direction="sendonly")
    _, answer = await encoder.publish(stage, "obs")
    audio, video = answer.split("m=audio", 1)[1].split("m=video", 1)
    assert "a=recvonly" in audio
    assert "a=inactive" in video


async def test_publish_after_close_is_refused(
    program: Callable[..., None], speakers: Callable[..., Speaker]
) -> None:
    """A closed stage refuses new speakers; closing it twice is fine."""
    stage = Stage("sp_closed", program)
    await stage.close()
    await stage.close()
    with pytest.raises(StageClosed, match="sp_closed is closed"):
        await stage.publish("ann", await speakers(ToneTrack(440)).offer())


async def test_answer_takes_only_opus_and_asks_for_dtx(
    stage: Stage, speakers: Callable[..., Speaker]
) -> None:
    """An offer of Opus, G.722, PCMU and PCMA is answered with Opus alone (the stage decodes
    Opus itself), and the answer asks the sender for DTX (usedtx=1)."""
    offer = await speakers(ToneTrack(440)).offer()
    assert re.search(r"a=rtpmap:\d+ PCMU/8000", offer)
    _, answer = await stage.publish("ann", offer)
    audio = answer.split("m=audio", 1)[1]
    payload_types = audio.split("\r\n", 1)[0].split()[2:]  # " port proto pt..."
    opus = re.search(r"a=rtpmap:(\d+) opus/48000", audio)
    assert opus is not None
    assert payload_types == [opus.group(1)]
    assert f"a=fmtp:{opus.group(1)} usedtx=1" in audio
    assert "PCMU" not in audio


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["a=rtpmap:111 opus/48000/2"], ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 usedtx=1"]),
        (
            ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1"],
            ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1"],
        ),
        (
            ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 usedtx=0"],
            ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 usedtx=0"],  # an explicit choice stays
        ),
        (
            ["a=rtpmap:9 G722/8000", "a=fmtp:9 x=1"],
            ["a=rtpmap:9 G722/8000", "a=fmtp:9 x=1"],  # not Opus: untouched
        ),
    ],
)
def test_ask_for_dtx(lines: list[str], expected: list[str]) -> None:
    head = ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111"]
    sdp = "\r\n".join([*head, *lines, ""])
    assert ask_for_dtx(sdp) == "\r\n".join([*head, *expected, ""])
