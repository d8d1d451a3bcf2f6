"""Program audio to Low-Latency HLS, with recording, replay, clips and downloads.

The stage mixer pushes 20 ms ticks; they flow one way through the modules::

    encoder.py    PCM -> AAC/Opus -> fMP4 fragments (PyAV), one fragment per part
    packager.py   fragments -> parts -> segments, stamped with program date-time
    live.py       the sliding window listeners read, blocking reloads, preload hints
    playlist.py   live and VOD playlist text
    recording.py  segments to disk as they are made; replay, clips, .m4a export
    broadcast.py  Broadcast, which ties them together
"""

from tribune.broadcast.broadcast import Broadcast
from tribune.broadcast.exceptions import (
    BadBlockingRequest,
    BadClipRange,
    BroadcastClosed,
    RecordingCorrupt,
    RecordingExists,
    RecordingNotFound,
)
from tribune.broadcast.media import CODECS, INIT_URI, CodecConfig, CodecName, Part, Segment
from tribune.broadcast.recording import MAX_CLIP_SECONDS, Recording

__all__ = [
    "CODECS",
    "INIT_URI",
    "MAX_CLIP_SECONDS",
    "BadBlockingRequest",
    "BadClipRange",
    "Broadcast",
    "BroadcastClosed",
    "CodecConfig",
    "CodecName",
    "Part",
    "Recording",
    "RecordingCorrupt",
    "RecordingExists",
    "RecordingNotFound",
    "Segment",
]
