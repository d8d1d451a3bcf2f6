"""``Broadcast``: the program audio of one Space, live over LL-HLS and recorded to disk."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from tribune.broadcast.encoder import Encoder, Fragment
from tribune.broadcast.exceptions import BroadcastClosed
from tribune.broadcast.live import LiveWindow
from tribune.broadcast.media import CODECS, PARTS_PER_SEGMENT, CodecConfig, CodecName
from tribune.broadcast.packager import Packager, TickClock
from tribune.broadcast.recording import Recording, RecordingWriter

logger = logging.getLogger(__name__)


class Broadcast:
    """Encode once; serve parts, segments and playlists; record every segment.

    Call ``push`` from the event loop every tick (20 ms of 48 kHz mono float32)::

        async with Broadcast(Path("data/spaces/42")) as broadcast:
            broadcast.push(pcm, time.time())
            await broadcast.wait_for(msn=3, part=2, timeout=6)
            text = broadcast.playlist()

    ``parts_per_segment`` sets the segment length in parts (6 x 0.341 s by default; 9 make
    3.072 s segments), and ``low_latency=False`` serves plain live HLS: the playlist lists
    segments only, with no parts, preload hint or server control.
    """

    def __init__(
        self,
        directory: Path,
        codec: CodecName = "aac",
        *,
        window: int = 20,
        parts_per_segment: int = PARTS_PER_SEGMENT,
        low_latency: bool = True,
    ) -> None:
        self.directory = directory
        self.codec: CodecConfig = CODECS[codec]
        self._encoder = Encoder(self.codec)
        self._clock = TickClock()
        self._packager = Packager(self._clock, parts_per_segment=parts_per_segment)
        self._live = LiveWindow(
            self.codec, window, parts_per_segment=parts_per_segment, low_latency=low_latency
        )
        self._writer = RecordingWriter(directory, self._encoder.init)
        # Dropped without close() (a bug, or a crash being simulated): stop the writer thread.
        self._abandon = weakref.finalize(self, self._writer.abandon)
        self._samples = 0
        self._closed = False
        logger.info("broadcast started: %s, %s", directory, codec)

    async def __aenter__(self) -> Broadcast:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def default_timeout(self) -> float:
        """How long a blocking request may be held: three target durations, per the spec."""
        return 3.0 * self._live.target_duration

    # -- input ---------------------------------------------------------------------------

    def push(self, pcm: npt.NDArray[np.float32], wallclock: float) -> None:
        """Add one tick of program audio; ``wallclock`` is ``time.time()`` of its first sample."""
        if self._closed:
            raise BroadcastClosed("the broadcast has ended; no more audio can be added")
        if pcm.ndim != 1:
            raise ValueError(f"expected mono samples as a 1-D array, got shape {pcm.shape}")
        if pcm.dtype != np.float32:
            pcm = pcm.astype(np.float32)
        self._clock.add(self._samples, wallclock)
        self._samples += len(pcm)
        for fragment in self._encoder.encode(pcm):
            self._package(fragment)

    def _package(self, fragment: Fragment) -> None:
        assert self._encoder.delay is not None  # a fragment implies a packet
        packaged = self._packager.add(fragment, self._encoder.delay)
        self._live.add_part(packaged.part)
        self._writer.append_part(packaged.part)
        if packaged.segment is not None:
            self._live.add_segment(packaged.segment)
            self._writer.append(packaged.segment)

    # -- output --------------------------------------------------------------------------

    def playlist(self) -> str:
        """The live LL-HLS media playlist."""
        return self._live.playlist()

    def init_bytes(self) -> bytes:
        return self._encoder.init

    def part_bytes(self, msn: int, index: int) -> bytes | None:
        return self._live.part_bytes(msn, index)

    def segment_bytes(self, msn: int) -> bytes | None:
        """A segment still in the live window; older ones are served from the recording."""
        return self._live.segment_bytes(msn)

    # As in LiveWindow: the timeout means "answer with the playlist as it is", not cancel.
    async def wait_for(
        self,
        msn: int,
        part: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Blocking playlist reload: return once ``msn`` (and ``part``) exists or on timeout.

        Raises BadBlockingRequest (400) when either is negative or too far ahead.
        """
        timeout = self.default_timeout if timeout is None else timeout
        await self._live.wait_for(msn, part, timeout)

    async def wait_part(
        self,
        msn: int,
        index: int,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> bytes | None:
        """A preload-hinted part's bytes as soon as it is made; None if it never will be."""
        timeout = self.default_timeout if timeout is None else timeout
        return await self._live.wait_part(msn, index, timeout)

    @property
    def next_msn(self) -> int:
        return self._live.next_msn

    @property
    def parts_per_segment(self) -> int:
        return self._live.parts_per_segment

    @property
    def ended(self) -> bool:
        """The playlist is complete (closed): no part will be added any more."""
        return self._live.ended

    @property
    def last_part(self) -> tuple[int, int] | None:
        return self._live.last_part

    # -- recording -----------------------------------------------------------------------

    def recording(self) -> Recording:
        """The recording as it stands on disk (what the writer thread has finished)."""
        return Recording.open(self.directory)

    async def sync(self) -> None:
        """Wait until every part and segment made so far is durable on disk."""
        await asyncio.wrap_future(self._writer.barrier())

    async def close(self) -> None:
        """Flush the segment in flight as a short last one, end the playlist and recording."""
        if self._closed:
            return
        self._closed = True
        for fragment in self._encoder.finish():
            self._package(fragment)
        last = self._packager.flush()
        if last is not None:
            self._live.add_segment(last)
            self._writer.append(last)
        self._live.end()
        self._writer.end(time.time())
        await asyncio.to_thread(self._writer.close)
        self._abandon.detach()
        logger.info("broadcast ended: %s, %d segments", self.directory, self._live.next_msn)
