"""Speakers' side of a Space: WHIP/WebRTC ingest, jitter buffers, the mixer, mix-minus.

A voice travels ``offer`` (is it usable?) -> ``stage`` (a peer connection per speaker) ->
``tracks`` (Opus frames taken from aiortc, decoded in the tick) -> ``jitter`` (smoothed) ->
``mixer`` (program and mix-minus, limited) -> back out through ``tracks`` (encoded once
per distinct mix) to each speaker, and to ``on_program``.
"""

from tribune.stage.exceptions import (
    BadOffer,
    NoAudio,
    NoOpus,
    NotSdp,
    StageClosed,
    TooManySessions,
)
from tribune.stage.stage import MAX_SPEAKERS, Stage, StageStats

__all__ = [
    "MAX_SPEAKERS",
    "BadOffer",
    "NoAudio",
    "NoOpus",
    "NotSdp",
    "Stage",
    "StageClosed",
    "StageStats",
    "TooManySessions",
]
