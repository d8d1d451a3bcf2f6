"""Speakers' side of a Space: WHIP/WebRTC ingest, jitter buffers, the mixer, mix-minus.

A voice travels ``offer`` (is it usable?) -> ``stage`` (a peer connection per speaker) ->
``tracks`` (decoded, downmixed) -> ``jitter`` (smoothed) -> ``mixer`` (program and
mix-minus, limited) -> back out through ``tracks`` to each speaker and to ``on_program``.
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
