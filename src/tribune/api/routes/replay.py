"""Replay of ended Spaces: a VOD playlist, clips, and ``.m4a`` downloads.

Recordings of Spaces that allowed guests are public once the Space has ended; others
need a signed-in caller. Files are immutable and served with long cache lifetimes.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Query, Response
from starlette.responses import FileResponse

from tribune.api.auth import CallerDep
from tribune.api.services import Services, ServicesDep
from tribune.exceptions import InvalidTransition, NotAuthenticated, NotFound
from tribune.rooms.space import SpaceState
from tribune.service.replay import SpaceRecording

router = APIRouter(prefix="/replay/{space_id}", tags=["replay"])

PLAYLIST = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"
_RUN = re.compile(r"^run-\d{1,6}$")
_FILE = re.compile(r"^(init\.mp4|seg\d{1,9}(\.partial)?\.m4s)$")


async def _recording(services: Services, space_id: str, caller: CallerDep) -> SpaceRecording:
    room = await services.spaces.get(space_id)
    if room.state is not SpaceState.ENDED:
        raise InvalidTransition(f"the Space is {room.state.value}; its replay opens when it ends")
    if not room.allow_guests and caller.user is None:
        raise NotAuthenticated("this Space's replay is for signed-in listeners: log in")
    root = services.runtime.settings.data_dir / "recordings"
    return await asyncio.to_thread(SpaceRecording.open, root, space_id)


@router.get("/index.m3u8", summary="The whole Space as a VOD playlist")
async def replay_playlist(space_id: str, caller: CallerDep, services: ServicesDep) -> Response:
    recording = await _recording(services, space_id, caller)
    return Response(recording.playlist(), media_type=PLAYLIST, headers={"Cache-Control": IMMUTABLE})


@router.get("/clip.m3u8", summary="A clip (up to 5 minutes) as a VOD playlist")
async def clip_playlist(
    space_id: str,
    caller: CallerDep,
    services: ServicesDep,
    start: float = Query(description="seconds from the start of the Space"),
    end: float = Query(description="seconds from the start of the Space"),
) -> Response:
    recording = await _recording(services, space_id, caller)
    return Response(
        recording.clip_playlist(start, end),
        media_type=PLAYLIST,
        headers={"Cache-Control": IMMUTABLE},
    )


@router.get(
    "/download.m4a",
    summary="Download the Space, or a clip of it, as .m4a (remuxed, not re-encoded)",
    response_class=FileResponse,
)
async def download(
    space_id: str,
    caller: CallerDep,
    services: ServicesDep,
    start: float | None = Query(None, description="clip start, seconds"),
    end: float | None = Query(None, description="clip end, seconds"),
) -> FileResponse:
    recording = await _recording(services, space_id, caller)
    path = await asyncio.to_thread(recording.export_m4a, start, end)
    suffix = "" if start is None and end is None else f"-{start or 0:g}-{end:g}s"
    return FileResponse(
        path,
        media_type="audio/mp4",
        filename=f"tribune-{space_id}{suffix}.m4a",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/{run}/{name}", summary="A recorded file (init.mp4 or segN.m4s)")
async def recorded_file(
    space_id: str, run: str, name: str, caller: CallerDep, services: ServicesDep
) -> FileResponse:
    if not _RUN.match(run) or not _FILE.match(name):
        raise NotFound(f"no such recorded file: {run}/{name}")
    recording = await _recording(services, space_id, caller)
    return FileResponse(
        recording.file(run, name), media_type="audio/mp4", headers={"Cache-Control": IMMUTABLE}
    )
