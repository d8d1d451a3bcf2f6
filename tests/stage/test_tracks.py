"""Frames across the WebRTC boundary: what comes out of the decoder, what goes to the encoder."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from tests.stage.conftest import FRAME, RATE
from tribune.stage.tracks import Downmixer, MixMinusTrack


def frame(pcm: np.ndarray, layout: str, rate: int = RATE) -> av.AudioFrame:
    f = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
    f.sample_rate = rate
    f.pts = 0
    f.time_base = fractions.Fraction(1, rate)
    return f


def test_decoded_stereo_becomes_mono_at_the_same_level() -> None:
    """aiortc's s16 stereo is averaged to float32 mono: equal channels keep their level."""
    left_right = np.tile(np.array([16384, 8192], np.int16), FRAME).reshape(1, -1)
    mono = Downmixer()(frame(left_right, "stereo"))
    assert mono.dtype == np.float32
    assert mono.shape == (FRAME,)
    assert np.allclose(mono, 0.375)


def test_other_rates_are_resampled_to_48khz() -> None:
    """A 16 kHz mono frame comes out as 48 kHz mono (three times the samples, same tone)."""
    t = np.arange(1600) / 16_000
    tone = np.round(16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1)
    downmix = Downmixer()
    out = np.concatenate([downmix(frame(tone, "mono", 16_000)) for _ in range(3)])
    assert abs(out.size - 3 * 4800) <= 64  # the resampler holds back a few samples
    assert 0.45 < np.abs(out[1000:]).max() < 0.55


async def test_mix_minus_track_yields_20ms_s16_frames_with_rising_pts() -> None:
    """Frames are s16 mono 48 kHz, 960 samples, pts +960 each; stale frames are dropped."""
    track = MixMinusTrack(depth=3)
    for value in (0.1, 0.2, 0.3, 0.4):
        track.push(np.full(FRAME, value, np.float32))
    assert track.dropped == 1
    first = await track.recv()  # only the newest of what waited before the peer connected
    track.push(np.full(FRAME, 0.5, np.float32))
    second = await track.recv()
    for f in (first, second):
        assert (f.format.name, f.layout.name, f.samples) == ("s16", "mono", FRAME)
        assert f.sample_rate == RATE
        assert f.time_base == fractions.Fraction(1, RATE)
    assert (first.pts, second.pts) == (0, FRAME)
    assert first.to_ndarray()[0, 0] == round(0.4 * 32767)
    assert second.to_ndarray()[0, 0] == round(0.5 * 32767)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
