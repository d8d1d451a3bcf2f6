"""The media of live Spaces: for each, a stage (speakers in, mix out) feeding a broadcast
(LL-HLS out, recorded). The control plane drives it through :meth:`MediaHub.apply`, so a
mute or a removal decided by the domain is enforced on the audio within the same request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tribune.broadcast import Broadcast, CodecName
from tribune.rooms.space import Room, RoomEvent, SpaceState
from tribune.service.edge_feed import EdgeFeed
from tribune.stage import Stage

logger = logging.getLogger(__name__)


@dataclass
class LiveMedia:
    space_id: str
    stage: Stage
    broadcast: Broadcast
    directory: Path


def run_directories(root: Path, space_id: str) -> list[Path]:
    """A Space's recording runs, oldest first (a restart mid-Space starts a new run)."""
    space_dir = root / space_id
    if not space_dir.is_dir():
        return []
    runs = [p for p in space_dir.iterdir() if p.is_dir() and p.name.startswith("run-")]
    return sorted(runs, key=lambda p: int(p.name.removeprefix("run-")))


class MediaHub:
    def __init__(
        self,
        recordings: Path,
        codec: CodecName = "aac",
        enabled: bool = True,
        feed: EdgeFeed | None = None,
    ) -> None:
        self.recordings = recordings
        #: pushes every part to the edges' streams (TRIBUNE_EDGES), if there are edges
        self.feed = feed
        self.codec = codec
        #: off in an API-only worker: nothing is started, ``get`` finds nothing
        self.enabled = enabled
        self._live: dict[str, LiveMedia] = {}
        self._closed = False

    def get(self, space_id: str) -> LiveMedia | None:
        return self._live.get(space_id)

    async def open(self, room: Room) -> LiveMedia:
        """Start the Space's media (idempotent)."""
        if not self.enabled:
            raise RuntimeError("media is disabled in this process (TRIBUNE_MEDIA=false)")
        media = self._live.get(room.id)
        if media is not None:
            return media
        runs = run_directories(self.recordings, room.id)
        number = int(runs[-1].name.removeprefix("run-")) + 1 if runs else 1
        directory = self.recordings / room.id / f"run-{number}"
        directory.mkdir(parents=True, exist_ok=True)
        broadcast = Broadcast(directory, codec=self.codec)
        await broadcast.__aenter__()

        def on_program(pcm: np.ndarray, wallclock: float) -> None:
            broadcast.push(pcm, wallclock)

        stage = Stage(room.id, on_program)
        for member in room.members.values():
            if member.muted:
                stage.set_muted(member.user_id, True)
        await stage.start()
        media = self._live[room.id] = LiveMedia(room.id, stage, broadcast, directory)
        if self.feed is not None:
            self.feed.follow(room.id, broadcast)
        logger.info("space %s: media started, recording to %s", room.id, directory)
        return media

    async def close_space(self, space_id: str) -> None:
        media = self._live.pop(space_id, None)
        if media is None:
            return
        await media.stage.close()
        await media.broadcast.close()
        if self.feed is not None:
            await self.feed.unfollow(space_id)
        logger.info("space %s: media stopped", space_id)

    async def apply(self, room: Room, events: list[RoomEvent]) -> None:
        """Enforce on the audio what the domain just decided."""
        if not self.enabled:
            return
        if room.state is SpaceState.LIVE and room.id not in self._live:
            await self.open(room)
        media = self._live.get(room.id)
        if media is None:
            return
        if room.state is not SpaceState.LIVE:
            await self.close_space(room.id)
            return
        for event in events:
            if event.type == "stage.muted":
                media.stage.set_muted(event.data["user_id"], bool(event.data["muted"]))
            elif event.type in ("stage.left", "member.removed"):
                await media.stage.kick(event.data["user_id"])

    async def reconcile(self, room: Room) -> None:
        """Make the Space's media match the room as stored: its state, who is muted and
        who is on stage. Events say the same incrementally; this repairs what an event
        lost on the way (a Redis restart between publisher and media node) left wrong."""
        if not self.enabled:
            return
        if room.state is not SpaceState.LIVE:
            await self.close_space(room.id)
            return
        media = self._live.get(room.id) or await self.open(room)
        want = {m.user_id for m in room.members.values() if m.muted}
        have = media.stage.muted()
        for user_id in want - have:
            media.stage.set_muted(user_id, True)
        for user_id in have - want:
            media.stage.set_muted(user_id, False)
        for user_id in set(media.stage.sessions().values()) - set(room.members):
            await media.stage.kick(user_id)

    def live_spaces(self) -> list[str]:
        return list(self._live)

    def levels(self, space_id: str) -> dict[str, float]:
        media = self._live.get(space_id)
        return media.stage.levels() if media is not None else {}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for space_id in list(self._live):
            await self.close_space(space_id)
        if self.feed is not None:
            await self.feed.close()
