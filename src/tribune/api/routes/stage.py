"""The stage: requests to speak, invitations, and moderating who is on it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tribune.api.auth import UserDep
from tribune.api.schemas import InviteIn, RequestOut
from tribune.api.services import ServicesDep
from tribune.rooms.permissions import Action, authorize
from tribune.rooms.roles import Role

router = APIRouter(prefix="/api/spaces/{space_id}", tags=["stage"])


@router.get("/requests", response_model=list[RequestOut], summary="The queue (hosts)")
async def list_requests(space_id: str, user: UserDep, services: ServicesDep) -> list[RequestOut]:
    room = await services.spaces.get(space_id)
    authorize(room.role_of(user.id), Action.VIEW_REQUESTS)
    return [
        RequestOut(user_id=r.user_id, display_name=r.display_name, requested_at=r.requested_at)
        for r in room.requests.values()
    ]


@router.post("/requests", status_code=201, summary="Ask to speak")
async def request_to_speak(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(
        space_id, lambda room, now: room.request_to_speak(user.id, user.display_name, now)
    )
    return Response(status_code=201)


@router.delete("/requests/me", summary="Withdraw my request", status_code=204)
async def withdraw_request(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.withdraw_request(user.id))
    return Response(status_code=204)


async def _answer(
    services: ServicesDep, space_id: str, user_id: str, actor: str, accept: bool
) -> None:
    await services.spaces.change(
        space_id, lambda room, now: room.answer_request(actor, user_id, accept, now)
    )


@router.post("/requests/{user_id}/accept", summary="Bring a requester on stage", status_code=204)
async def accept_request(
    space_id: str, user_id: str, user: UserDep, services: ServicesDep
) -> Response:
    await _answer(services, space_id, user_id, user.id, accept=True)
    return Response(status_code=204)


@router.post("/requests/{user_id}/deny", summary="Turn a request down", status_code=204)
async def deny_request(
    space_id: str, user_id: str, user: UserDep, services: ServicesDep
) -> Response:
    await _answer(services, space_id, user_id, user.id, accept=False)
    return Response(status_code=204)


@router.post("/invitations", status_code=201, summary="Invite someone to speak or co-host")
async def invite(space_id: str, body: InviteIn, user: UserDep, services: ServicesDep) -> Response:
    if body.username is not None:
        target = (await services.accounts.user_by_username(body.username)).id
    else:
        assert body.user_id is not None
        target = body.user_id
        await services.accounts.user_by_id(target)
    role = Role(body.role)
    await services.spaces.change(
        space_id, lambda room, now: room.invite(user.id, target, role, now)
    )
    return Response(status_code=201)


@router.post("/invitations/me/accept", summary="Accept my invitation", status_code=204)
async def accept_invitation(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(
        space_id, lambda room, now: room.answer_invitation(user.id, True, user.display_name, now)
    )
    return Response(status_code=204)


@router.post("/invitations/me/decline", summary="Decline my invitation", status_code=204)
async def decline_invitation(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(
        space_id, lambda room, now: room.answer_invitation(user.id, False, user.display_name, now)
    )
    return Response(status_code=204)


@router.post("/members/me/mute", summary="Mute myself", status_code=204)
async def mute_self(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.set_self_mute(user.id, True))
    return Response(status_code=204)


@router.post("/members/me/unmute", summary="Unmute myself", status_code=204)
async def unmute_self(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.set_self_mute(user.id, False))
    return Response(status_code=204)


@router.post("/members/me/leave", summary="Leave the stage", status_code=204)
async def leave_stage(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.leave_stage(user.id))
    return Response(status_code=204)


@router.post("/members/{user_id}/mute", summary="Mute a speaker (hosts)", status_code=204)
async def mute_member(
    space_id: str, user_id: str, user: UserDep, services: ServicesDep
) -> Response:
    await services.spaces.change(
        space_id, lambda room, now: room.set_host_mute(user.id, user_id, True)
    )
    return Response(status_code=204)


@router.post("/members/{user_id}/unmute", summary="Lift a host mute (hosts)", status_code=204)
async def unmute_member(
    space_id: str, user_id: str, user: UserDep, services: ServicesDep
) -> Response:
    await services.spaces.change(
        space_id, lambda room, now: room.set_host_mute(user.id, user_id, False)
    )
    return Response(status_code=204)


@router.post("/members/{user_id}/demote", summary="One step down the stage", status_code=204)
async def demote(space_id: str, user_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.demote(user.id, user_id))
    return Response(status_code=204)


@router.post("/members/{user_id}/cohost", summary="Make a speaker co-host (host)", status_code=204)
async def make_cohost(
    space_id: str, user_id: str, user: UserDep, services: ServicesDep
) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.appoint_cohost(user.id, user_id))
    return Response(status_code=204)


@router.post("/members/{user_id}/remove", summary="Remove for good (hosts)", status_code=204)
async def remove(space_id: str, user_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.change(space_id, lambda room, now: room.remove(user.id, user_id))
    await services.runtime.presence.forget(space_id, user_id)
    return Response(status_code=204)
