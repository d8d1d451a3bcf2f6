"""Reading a live broadcast as one sequence of parts, from a little before the newest on.

Used by the stream route (``/listen/...``, one response per listener) and by the edge
feed (which pushes each part to the edges' nchan channels).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tribune.broadcast.broadcast import Broadcast

#: parts sent at once to a new listener (what an edge keeps: nchan_subscriber_first_message)
BACKLOG = 2
#: how long one wait for the next part lasts before looking again
HOLD_S = 6.0


def following(part: tuple[int, int], parts_per_segment: int) -> tuple[int, int]:
    """The part after ``part``."""
    msn, index = part
    return (msn, index + 1) if index + 1 < parts_per_segment else (msn + 1, 0)


def backlog_start(last: tuple[int, int], parts_per_segment: int, count: int) -> tuple[int, int]:
    """The part ``count - 1`` parts before ``last`` (or the first part, if there are fewer)."""
    msn, index = last
    for _ in range(count - 1):
        if index > 0:
            index -= 1
        elif msn > 0:
            msn, index = msn - 1, parts_per_segment - 1
    return msn, index


async def parts(broadcast: Broadcast, backlog: int = BACKLOG) -> AsyncIterator[bytes]:
    """Every part from ``backlog`` before the newest on, until the broadcast ends."""
    per_segment = broadcast.parts_per_segment
    last = broadcast.last_part
    at = backlog_start(last, per_segment, backlog) if last is not None else (0, 0)
    while True:
        data = broadcast.part_bytes(*at)
        if data is None:
            if broadcast.ended:
                return
            newest = broadcast.last_part
            if newest is not None and newest >= at:
                # Gone from the live window already (this reader fell far behind): rejoin
                # the live edge rather than wait for a part that will never come back.
                at = newest
                continue
            data = await broadcast.wait_part(*at, HOLD_S)
            if data is None:
                continue  # nothing within the hold time: look again (or see the end)
        yield data
        at = following(at, per_segment)
