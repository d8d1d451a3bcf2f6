"""The listener's side: join, heartbeat, room state, reactions.

These are the requests a crowd makes, so they avoid the database where they can: a
guest join is an in-memory check, an HMAC and a presence update; the room state is one
shared document rebuilt at most once per max-age and cacheable by any HTTP cache.
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request, Response

from tribune.api.addresses import client_address
from tribune.api.auth import CallerDep, ListenerDep
from tribune.api.listener_views import join_response
from tribune.api.problems import PROBLEM_JSON
from tribune.api.schemas import HeartbeatOut, JoinIn, JoinOut, ReactionIn
from tribune.api.services import ServicesDep

router = APIRouter(prefix="/api/spaces", tags=["listening"])


@router.post(
    "/{space_id}/join",
    status_code=201,
    response_model=JoinOut,
    summary="Join as a listener (guests too, if the host allows)",
    responses={
        503: {
            "description": "Waiting room: over the Space's admission limits (or before a "
            "scheduled start). The problem carries `position` (1-based), `estimated_wait_s`, "
            "`retry_after` and a `ticket`; come back after `Retry-After` seconds (plus a "
            'random extra) with `{"ticket": "..."}` as the body.',
            "content": {PROBLEM_JSON: {}},
        },
        403: {
            "description": "a forged or altered ticket, or another Space's; or, in attack "
            "mode, `proof-of-work-required`: solve the problem's `challenge` and join again "
            'with `{"pow": "..."}`'
        },
        429: {"description": "attack mode: too many joins from this address"},
        409: {"description": "the ticket was already used: join again without it"},
        410: {"description": "the ticket expired: join again without it"},
    },
)
async def join(
    space_id: str,
    request: Request,
    caller: CallerDep,
    services: ServicesDep,
    body: JoinIn | None = None,
) -> Response:
    """Guests without credentials are answered by ``api.fastpath`` with the same code."""
    joined = await services.spaces.join(
        space_id,
        caller.user,
        body.ticket if body is not None else None,
        pow=body.pow if body is not None else None,
        address=client_address(request.scope, services.runtime.settings.trusted_proxies),
    )
    return join_response(services, joined)


@router.get(
    "/{space_id}/admission",
    summary="Before joining: is the Space in attack mode, and its proof-of-work challenge",
    responses={200: {"content": {"application/json": {}}}},
)
async def admission(space_id: str, services: ServicesDep) -> Response:
    """``{"attack_mode": bool, "challenge": {...} | null}``, the same for everyone and
    cacheable for a second (edges read it to turn unsolved joins away themselves)."""
    document = await services.spaces.admission_document(space_id)
    return Response(
        orjson.dumps(document),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=1"},
    )


@router.post("/{space_id}/heartbeat", response_model=HeartbeatOut, summary="I am still here")
async def heartbeat(space_id: str, listener: ListenerDep, services: ServicesDep) -> HeartbeatOut:
    counts = await services.spaces.heartbeat(space_id, listener)
    rt = services.runtime
    out = HeartbeatOut(
        listeners=counts.public(),
        next_heartbeat_s=rt.settings.heartbeat_interval_s,
    )
    if listener.expires_at - time.time() < rt.settings.listener_token_ttl_s / 2:
        out.listener_token, out.expires_at = rt.listener_tokens.issue(
            space_id, listener.listener_id
        )
    return out


@router.get(
    "/{space_id}/state",
    summary="Room state: identical for every listener, cacheable for a second",
    responses={200: {"content": {"application/json": {}}}},
)
async def room_state(space_id: str, request: Request, services: ServicesDep) -> Response:
    body, etag = await services.spaces.state_document(space_id)
    max_age = services.runtime.settings.state_max_age_s
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.post("/{space_id}/reactions", status_code=204, summary="React (rate-limited per person)")
async def react(
    space_id: str, body: ReactionIn, caller: CallerDep, services: ServicesDep
) -> Response:
    await services.spaces.react(space_id, body.reaction, caller.user, caller.listener)
    return Response(status_code=204)
