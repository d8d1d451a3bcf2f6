"""Opus across the WebRTC boundary: the stage's own decode, encode and outgoing track."""

from __future__ import annotations

import fractions
import queue

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from tests.stage.conftest import FRAME, RATE, amplitude
from tribune.stage.tracks import (
    EncodedMixTrack,
    InOrder,
    OpusDecoder,
    OpusEncoder,
    bypass_receive_buffer,
    tap_decoded_frames,
)


def tone(freq: float, frames: int, level: float = 0.3) -> np.ndarray:
    t = np.arange(frames * FRAME) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_opus_round_trip_keeps_the_tone_and_its_level() -> None:
    """Our encoder's packets decode (in our decoder) to the same tone at the same level."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    pcm = tone(440, 50)
    out = []
    for i in range(50):
        packets = encoder.encode(pcm[i * FRAME : (i + 1) * FRAME])
        assert len(packets) == 1
        assert 0 < len(packets[0]) < 200
        decoded = decoder.decode(packets[0])
        assert decoded is not None
        assert decoded.dtype == np.float32
        out.append(decoded)
    heard = np.concatenate(out)[10 * FRAME :]  # past the codec's start-up
    assert amplitude(heard, 440) == pytest.approx(0.3, rel=0.1)
    assert amplitude(heard, 660) < 0.01
    assert decoder.errors == 0


def test_a_stereo_stream_decodes_to_mono_at_the_same_level() -> None:
    """A stereo Opus stream (a browser with stereo=1) with the voice in both channels comes
    out mono at the voice's level, not 3 dB down."""
    sender = av.CodecContext.create("libopus", "w")
    sender.bit_rate = 96_000
    sender.format = "s16"
    sender.layout = "stereo"
    sender.sample_rate = RATE
    sender.time_base = fractions.Fraction(1, RATE)
    decoder = OpusDecoder()
    pcm = np.repeat(np.round(tone(660, 40) * 32767).astype(np.int16), 2)
    out = []
    for i in range(40):
        frame = av.AudioFrame.from_ndarray(
            pcm[2 * i * FRAME : 2 * (i + 1) * FRAME].reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        for packet in sender.encode(frame):
            decoded = decoder.decode(bytes(packet))
            assert decoded is not None
            assert decoded.ndim == 1
            out.append(decoded)
    heard = np.concatenate(out)[10 * FRAME :]
    assert amplitude(heard, 660) == pytest.approx(0.3, rel=0.1)


def test_garbage_is_counted_and_the_decoder_goes_on() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    assert decoder.decode(b"") is None
    assert decoder.decode(b"\xff" * 5) is None
    assert decoder.errors == 2
    good = decoder.decode(encoder.encode(tone(440, 1))[0])
    assert good is not None
    assert good.size == FRAME


def test_encoder_refuses_a_frame_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="960"):
        OpusEncoder().encode(np.zeros(480, np.float32))


def test_encoder_frame_length_follows_the_tick() -> None:
    """A 10 ms tick makes 10 ms Opus packets (TOC config: 10 ms CELT)."""
    packets = OpusEncoder(480).encode(tone(440, 1)[:480])
    assert len(packets) == 1
    assert OpusDecoder().decode(packets[0]).size == 480  # type: ignore[union-attr]


async def test_encoded_mix_track_yields_packets_with_rising_pts() -> None:
    """Packets come out as pushed with pts +960 each in 1/48000; stale ones are dropped."""
    track = EncodedMixTrack(depth=3)
    for payload in (b"a", b"b", b"c", b"d"):
        track.push(payload)
    assert track.dropped == 1
    first = await track.recv()  # only the newest of what waited before the peer connected
    track.push(b"e")
    second = await track.recv()
    assert (bytes(first), bytes(second)) == (b"d", b"e")
    assert (first.pts, second.pts) == (0, FRAME)
    assert first.time_base == second.time_base == fractions.Fraction(1, RATE)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_tap_takes_frames_and_still_lets_aiortcs_decoder_thread_stop() -> None:
    """The tap gets each frame's bytes (with the sequence number when the pass-through made
    it); the stop signal (None) still reaches the queue aiortc's decoder thread reads,
    whichever one it is."""
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        original = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        got: list[tuple[int | None, bytes]] = []
        assert tap_decoded_frames(receiver, got.append)
        assert bypass_receive_buffer(receiver)
        tap = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        packet = RtpPacket(payload_type=96, sequence_number=65535, timestamp=960)
        packet._data = b"opus"  # type: ignore[attr-defined]  # aiortc's depayloaded payload
        pli, frame = buffer.add(packet)
        assert not pli
        tap.put((None, frame))
        tap.put((None, JitterFrame(data=b"aiortc's", timestamp=0)))
        assert got == [(65535, b"opus"), (None, b"aiortc's")]
        tap.put(None)
        assert original.get_nowait() is None
        assert tap.get_nowait() is None
        with pytest.raises(queue.Empty):
            original.get_nowait()
    finally:
        await pc.close()


def test_in_order_sorts_a_tick_and_drops_late_and_duplicate_frames() -> None:
    """Frames of one tick come out in sequence order across the 16-bit wrap; a repeat, or a
    frame older than one already handed out, is dropped and counted."""
    order = InOrder()
    assert order([(65534, b"b"), (65533, b"a"), (0, b"d"), (65535, b"c")]) == [
        b"a",
        b"b",
        b"c",
        b"d",
    ]
    assert order([(2, b"f"), (1, b"e"), (1, b"e"), (65535, b"late")]) == [b"e", b"f"]
    assert order.late == 1
    assert order([(2, b"again")]) == []
    assert order.late == 2
    assert order([(None, b"x"), (None, b"y")]) == [b"x", b"y"]  # aiortc's buffer: as is
