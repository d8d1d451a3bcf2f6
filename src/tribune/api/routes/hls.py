"""Live audio for listeners: the LL-HLS presentation of a Space.

Everything sits under ``/hls/{space_id}/{listener token}/`` so that the relative URIs in
the playlist (``init.mp4``, ``part12.3.m4s``, ``seg12.m4s``) carry the token with them in
every player (query strings are not inherited by relative URIs). The token is checked
with the key alone (no database); an edge can check it the same way and drop the path
segment from its cache key, so one fetch serves every listener.

Parts and segments never change once made: ``immutable``. Playlists change every part:
cacheable for a fraction of a part. A blocking playlist request
(``_HLS_msn``/``_HLS_part``) is held until that part exists, as the draft requires.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from tribune.api.services import Services, ServicesDep
from tribune.exceptions import InvalidInput, NotFound, PermissionDenied
from tribune.service.media import LiveMedia

router = APIRouter(prefix="/hls/{space_id}/{token}", tags=["listening"])

PLAYLIST = "application/vnd.apple.mpegurl"
MP4 = "audio/mp4"
IMMUTABLE = "public, max-age=31536000, immutable"
#: how long a blocking playlist request may be held (3 target durations, per the draft)
BLOCK_S = 6.0

_PART = re.compile(r"^part(\d{1,9})\.(\d{1,3})\.m4s$")
_SEGMENT = re.compile(r"^seg(\d{1,9})\.m4s$")


class BadHLSRequest(InvalidInput):
    title = "Bad HLS request"


def live_media(services: Services, space_id: str, token: str) -> LiveMedia:
    listener = services.runtime.listener_tokens.verify(token)
    if listener.space_id != space_id:
        raise PermissionDenied("this listener token is for another Space")
    media = services.runtime.media.get(space_id)
    if media is None:
        raise NotFound(f"Space {space_id!r} is not live")
    return media


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise BadHLSRequest(f"{name} must be a non-negative integer, not {raw!r}")
    return int(raw)


@router.get("/live.m3u8", summary="Live LL-HLS media playlist (blocking reload supported)")
async def live_playlist(
    space_id: str, token: str, request: Request, services: ServicesDep
) -> Response:
    media = live_media(services, space_id, token)
    msn = _int_param(request, "_HLS_msn")
    part = _int_param(request, "_HLS_part")
    if part is not None and msn is None:
        raise BadHLSRequest("_HLS_part needs _HLS_msn")
    if msn is not None:
        await media.broadcast.wait_for(msn, part, BLOCK_S)
    return Response(
        media.broadcast.playlist(),
        media_type=PLAYLIST,
        headers={"Cache-Control": "public, max-age=0, s-maxage=0"},
    )


@router.get("/init.mp4", summary="Initialization section")
async def init_section(space_id: str, token: str, services: ServicesDep) -> Response:
    media = live_media(services, space_id, token)
    return Response(
        media.broadcast.init_bytes(), media_type=MP4, headers={"Cache-Control": IMMUTABLE}
    )


@router.get("/{name}", summary="A part (partN.i.m4s) or a segment (segN.m4s)")
async def media_file(name: str, space_id: str, token: str, services: ServicesDep) -> Response:
    media = live_media(services, space_id, token)
    if match := _PART.match(name):
        msn, index = int(match.group(1)), int(match.group(2))
        data = media.broadcast.part_bytes(msn, index)
        if data is None:
            # A preload hint is fetched before the part exists: hold it until it does.
            await media.broadcast.wait_part(msn, index, BLOCK_S)
            data = media.broadcast.part_bytes(msn, index)
    elif match := _SEGMENT.match(name):
        data = media.broadcast.segment_bytes(int(match.group(1)))
    else:
        raise NotFound(f"no such file in this presentation: {name!r}")
    if data is None:
        raise NotFound(f"{name} is not available (too old, or not made yet)")
    return Response(data, media_type=MP4, headers={"Cache-Control": IMMUTABLE})
