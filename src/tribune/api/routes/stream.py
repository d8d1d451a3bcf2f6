"""Live audio as one HTTP response: every part, in order, as it is made.

LL-HLS costs a listener two requests a part (a blocking playlist reload and the part), six
a second with 0.341 s parts: at an edge that is the price of each listener, paid in
requests. This is the same audio for a fraction of it: one request per listening session,
whose body is the raw concatenation of the parts (each a CMAF fragment, ``moof`` +
``mdat``), starting with the last few parts made (``tribune.broadcast.stream.BACKLOG``)
and continuing with each new one the moment it exists. A Media Source Extensions player
appends the bytes as they come (after the init section from
``/hls/{space}/{token}/init.mp4``); fragments carry their own decode times, so where a
chunk boundary falls does not matter.

At scale the edges serve this path themselves (nginx + nchan, fed by the media process,
see ``tribune.service.edge_feed`` and docs/edges.md); this route is the same contract for
the embedded default and for anyone talking to the origin directly. The body ends when
the Space does.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from tribune.api.routes.hls import MP4, live_media
from tribune.api.services import ServicesDep
from tribune.broadcast.stream import parts

router = APIRouter(prefix="/listen", tags=["listening"])


@router.get(
    "/{space_id}/{token}",
    summary="The live audio as one stream of fMP4 fragments (for MSE players)",
    response_class=StreamingResponse,
)
async def listen(space_id: str, token: str, services: ServicesDep) -> StreamingResponse:
    media = live_media(services, space_id, token)
    return StreamingResponse(
        parts(media.broadcast),
        media_type=MP4,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
