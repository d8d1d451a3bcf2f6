"""The live edge: the sliding window of segments and parts, and blocking requests on it.

Listeners' requests wait on one ``asyncio.Event`` that is replaced each time something is
published, so a waiter wakes exactly when the edge moves and re-checks its own condition;
nothing polls. All methods run on the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable

from tribune.broadcast.exceptions import BadBlockingRequest
from tribune.broadcast.media import PARTS_PER_SEGMENT, CodecConfig, Part, Segment
from tribune.broadcast.playlist import LiveState, live_playlist

logger = logging.getLogger(__name__)

#: segments whose parts the playlist lists (the spec asks for parts within three target
#: durations of the live edge)
PART_SEGMENTS = 3
#: extra segments (and parts) kept after they leave the playlist, for players that
#: fetched the previous playlist just before they left
GRACE = 3


class LiveWindow:
    """Holds the last ``window`` segments for listeners; the recording keeps everything.

    ``parts_per_segment`` must match the packager's; ``low_latency=False`` renders plain
    live HLS (no parts, preload hints or server control in the playlist).
    """

    def __init__(
        self,
        codec: CodecConfig,
        window: int = 20,
        *,
        parts_per_segment: int = PARTS_PER_SEGMENT,
        low_latency: bool = True,
    ) -> None:
        if window < PART_SEGMENTS:
            raise ValueError(f"window must hold at least {PART_SEGMENTS} segments, got {window}")
        self.codec = codec
        self.window = window
        self.parts_per_segment = parts_per_segment
        self.low_latency = low_latency
        #: EXT-X-TARGETDURATION for this window's segments
        self.target_duration = codec.target_duration_for(parts_per_segment)
        self._segments: deque[Segment] = deque()
        self._by_msn: dict[int, Segment] = {}
        self._parts: dict[tuple[int, int], Part] = {}
        self._open: list[Part] = []
        self._next_msn = 0
        self._last_part: tuple[int, int] | None = None
        self._ended = False
        self._changed = asyncio.Event()
        self._playlist: str | None = None
        # Spec: the Advance Part Limit is 3 / PART-TARGET when that is under a second.
        pt = codec.part_target
        self._advance_part_limit = math.floor(3 / pt) if pt < 1 else 3

    # -- publishing (the broadcast's side) ---------------------------------------------

    def add_part(self, part: Part) -> None:
        if part.msn != self._next_msn or part.index != len(self._open):
            raise ValueError(
                f"part {part.msn}.{part.index} out of order; expected "
                f"{self._next_msn}.{len(self._open)}"
            )
        self._open.append(part)
        self._parts[(part.msn, part.index)] = part
        self._last_part = (part.msn, part.index)
        self._publish()

    def add_segment(self, segment: Segment) -> None:
        """Close the open segment; its parts must have been added already."""
        if segment.msn != self._next_msn or list(segment.parts) != self._open:
            raise ValueError(f"segment {segment.msn} does not match the parts added")
        self._open = []
        self._next_msn += 1
        self._segments.append(segment)
        self._by_msn[segment.msn] = segment
        while len(self._segments) > self.window + GRACE:
            gone = self._by_msn.pop(self._segments.popleft().msn)
            logger.debug("segment %d left the live window", gone.msn)
        stale = self._next_msn - PART_SEGMENTS - GRACE
        for key in [k for k in self._parts if k[0] < stale]:
            del self._parts[key]
        self._publish()

    def end(self) -> None:
        """No more media: the playlist gets ENDLIST and every waiter returns."""
        self._ended = True
        self._publish()

    def _publish(self) -> None:
        self._playlist = None
        self._changed.set()
        self._changed = asyncio.Event()

    # -- reading (the listeners' side) -------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def next_msn(self) -> int:
        return self._next_msn

    @property
    def last_part(self) -> tuple[int, int] | None:
        """``(msn, index)`` of the newest part, or None before the first."""
        return self._last_part

    def playlist(self) -> str:
        """The current live playlist (rendered once per change, shared by all listeners)."""
        if self._playlist is None:
            listed = list(self._segments)[-self.window :]
            self._playlist = live_playlist(
                LiveState(
                    target_duration=self.target_duration,
                    part_target=self.codec.part_target,
                    segments=listed,
                    open_parts=self._open,
                    next_msn=self._next_msn,
                    parts_from_msn=self._next_msn - PART_SEGMENTS,
                    ended=self._ended,
                    low_latency=self.low_latency,
                )
            )
        return self._playlist

    def part_bytes(self, msn: int, index: int) -> bytes | None:
        part = self._parts.get((msn, index))
        return None if part is None else part.data

    def segment_bytes(self, msn: int) -> bytes | None:
        segment = self._by_msn.get(msn)
        return None if segment is None else segment.data

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds segment ``msn`` (or that part of it), or later."""
        if part is None:
            return msn < self._next_msn
        return self._last_part is not None and (msn, part) <= self._last_part

    def check_request(self, msn: int, part: int | None) -> None:
        """Raise BadBlockingRequest for a request the spec says to answer with 400."""
        if msn < 0 or (part is not None and part < 0):
            raise BadBlockingRequest(
                f"_HLS_msn and _HLS_part must not be negative (got {msn}, {part})"
            )
        if msn > self._next_msn + 2:
            raise BadBlockingRequest(
                f"_HLS_msn={msn} is more than two segments past the next one ({self._next_msn})"
            )
        if part is not None:
            last = -1
            if self._last_part is not None:
                last = self._last_part[0] * self.parts_per_segment + self._last_part[1]
            ahead = msn * self.parts_per_segment + part - last
            if ahead > self._advance_part_limit:
                raise BadBlockingRequest(
                    f"_HLS_part={part} of segment {msn} is {ahead} parts past the newest "
                    f"(limit {self._advance_part_limit})"
                )

    # The timeout is HLS semantics (answer with the current playlist), not cancellation,
    # so it is a parameter rather than the caller's asyncio.timeout().
    async def wait_for(self, msn: int, part: int | None, timeout: float) -> None:  # noqa: ASYNC109
        """Return once segment ``msn`` (part ``part``, if given) is published, or on timeout.

        Raises BadBlockingRequest at once for a request that is negative or too far ahead.
        Also returns when the broadcast ends, since nothing more will come.
        """
        self.check_request(msn, part)
        await self._wait_until(lambda: self.has(msn, part), self._deadline(timeout))

    async def wait_part(self, msn: int, index: int, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """Part ``msn.index`` once made (a preload hint); None on timeout or if it never will be."""
        self.check_request(msn, index)
        await self._wait_until(lambda: self.has(msn, index), self._deadline(timeout))
        return self.part_bytes(msn, index)

    @staticmethod
    def _deadline(timeout: float) -> float:
        return asyncio.get_running_loop().time() + timeout

    async def _wait_until(self, ready: Callable[[], bool], deadline: float) -> bool:
        while not ready():
            if self._ended:
                return False
            changed = self._changed
            try:
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            except TimeoutError:
                return ready()
        return True
