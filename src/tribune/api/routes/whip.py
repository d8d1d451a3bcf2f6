"""WHIP (RFC 9725): speakers publish their microphone with one HTTP request.

``POST /api/spaces/{id}/whip`` with an SDP offer (``application/sdp``) and a bearer token
(an API token of a stage member, or a browser session with its CSRF token) answers
``201 Created``, the SDP answer, and a ``Location`` whose ``DELETE`` ends the session.
ICE candidates are gathered before answering (no trickle), so ``PATCH`` is not offered.

In a scaled deployment an API-only worker checks the request like any other and then
forwards it to the media node (``TRIBUNE_MEDIA_URL``), which holds the Space's stage and
checks it again; the answer and ``Location`` come back unchanged.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request, Response

from tribune.api.auth import UserDep
from tribune.api.services import Services, ServicesDep
from tribune.exceptions import InvalidInput, InvalidTransition, NotFound, ServiceUnavailable
from tribune.rooms.permissions import Action, authorize
from tribune.rooms.space import SpaceState

router = APIRouter(prefix="/api/spaces/{space_id}/whip", tags=["speaking (WHIP)"])

SDP = "application/sdp"


@router.post(
    "",
    status_code=201,
    summary="Publish audio (WHIP): SDP offer in, SDP answer out",
    openapi_extra={
        "requestBody": {"required": True, "content": {SDP: {"schema": {"type": "string"}}}}
    },
    responses={201: {"content": {SDP: {}}, "description": "SDP answer; Location: the session"}},
)
async def publish(
    space_id: str, request: Request, user: UserDep, services: ServicesDep
) -> Response:
    room = await services.spaces.get(space_id)
    room.check_not_removed(user.id)
    authorize(room.role_of(user.id), Action.PUBLISH_AUDIO)
    if room.state is not SpaceState.LIVE:
        raise InvalidTransition(f"the Space is {room.state.value}; publish once it is live")
    body = await request.body()
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the SDP offer is not UTF-8 text") from None
    media = services.runtime.media.get(space_id)
    if media is None and services.runtime.media_client is not None:
        return await _forward(services, request, body)
    if media is None:
        raise InvalidTransition("the Space's audio is not running; try again in a moment")
    session_id, answer = await media.stage.publish(user.id, offer)
    location = f"/api/spaces/{space_id}/whip/{session_id}"
    return Response(
        answer,
        status_code=201,
        media_type=SDP,
        headers={"Location": location, "Cache-Control": "no-store"},
    )


@router.delete("/{session_id}", status_code=200, summary="Stop publishing (WHIP)")
async def unpublish(
    space_id: str, session_id: str, request: Request, user: UserDep, services: ServicesDep
) -> Response:
    media = services.runtime.media.get(space_id)
    if media is None and services.runtime.media_client is not None:
        return await _forward(services, request, b"")
    owner = media.stage.sessions().get(session_id) if media is not None else None
    if media is None or owner is None:
        raise NotFound(f"there is no WHIP session {session_id!r} in this Space")
    if owner != user.id:
        room = await services.spaces.get(space_id)
        authorize(room.role_of(user.id), Action.REMOVE)  # hosts may cut anyone's session
    await media.stage.unpublish(session_id)
    return Response(status_code=200)


#: what a WHIP request carries that the media node needs to check it again
_FORWARDED = ("authorization", "cookie", "x-csrf-token", "content-type", "origin")
_RETURNED = ("content-type", "location", "cache-control")


async def _forward(services: Services, request: Request, body: bytes) -> Response:
    client = services.runtime.media_client
    assert client is not None
    headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
    try:
        upstream = await client.request(
            request.method, request.url.path, content=body, headers=headers
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"the media node for this Space cannot be reached ({type(exc).__name__})"
        ) from exc
    returned = {k: v for k, v in upstream.headers.items() if k in _RETURNED}
    return Response(upstream.content, status_code=upstream.status_code, headers=returned)


@router.options("", include_in_schema=False)
async def whip_options() -> Response:
    return Response(status_code=204, headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"})
