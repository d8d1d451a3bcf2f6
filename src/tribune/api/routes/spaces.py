"""Spaces: create, list, read, edit, lifecycle, reminders."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from tribune.api.auth import CallerDep, UserDep
from tribune.api.present import space_out, viewer_of
from tribune.api.schemas import SpaceCreate, SpaceEdit, SpaceList, SpaceOut
from tribune.api.services import ServicesDep
from tribune.rooms.space import Room, SpaceState

router = APIRouter(prefix="/api/spaces", tags=["spaces"])

_LISTINGS = {
    "live": [SpaceState.LIVE],
    "upcoming": [SpaceState.SCHEDULED],
    "ended": [SpaceState.ENDED],
}


async def _out(services: ServicesDep, room: Room, user_id: str | None) -> SpaceOut:
    counts = await services.spaces.counts(room)
    reminders = await services.spaces.reminder_count(room.id)
    viewer = None
    if user_id is not None:
        reminded = await services.spaces.has_reminder(room.id, user_id)
        viewer = viewer_of(room, user_id, reminded)
    return space_out(room, counts, reminders, viewer)


@router.post("", status_code=201, response_model=SpaceOut, summary="Create or schedule a Space")
async def create_space(body: SpaceCreate, user: UserDep, services: ServicesDep) -> SpaceOut:
    room = await services.spaces.create(
        user, body.title, body.description, body.scheduled_start, body.allow_guests
    )
    return await _out(services, room, user.id)


@router.get("", response_model=SpaceList, summary="Live now, upcoming, or ended")
async def list_spaces(
    services: ServicesDep,
    state: Literal["live", "upcoming", "ended"] = "live",
    limit: int = Query(50, ge=1, le=100),
    offset: int = Query(0, ge=0),
) -> SpaceList:
    rows = await services.spaces.listing(_LISTINGS[state], limit, offset)
    return SpaceList(spaces=[space_out(room, counts, rem) for room, counts, rem in rows])


@router.get("/{space_id}", response_model=SpaceOut)
async def get_space(space_id: str, caller: CallerDep, services: ServicesDep) -> SpaceOut:
    room = await services.spaces.get(space_id)
    return await _out(services, room, caller.user.id if caller.user else None)


@router.patch("/{space_id}", response_model=SpaceOut, summary="Edit (host only)")
async def edit_space(
    space_id: str, body: SpaceEdit, user: UserDep, services: ServicesDep
) -> SpaceOut:
    room, _ = await services.spaces.change(
        space_id,
        lambda room, now: room.edit(
            user.id,
            now,
            title=body.title,
            description=body.description,
            scheduled_start=body.scheduled_start,
            allow_guests=body.allow_guests,
        ),
    )
    return await _out(services, room, user.id)


@router.post("/{space_id}/start", response_model=SpaceOut, summary="Go live (host only)")
async def start_space(space_id: str, user: UserDep, services: ServicesDep) -> SpaceOut:
    room, _ = await services.spaces.change(space_id, lambda room, now: room.start(user.id, now))
    return await _out(services, room, user.id)


@router.post("/{space_id}/end", response_model=SpaceOut, summary="End (host only)")
async def end_space(space_id: str, user: UserDep, services: ServicesDep) -> SpaceOut:
    room, _ = await services.spaces.change(space_id, lambda room, now: room.end(user.id, now))
    return await _out(services, room, user.id)


@router.post("/{space_id}/cancel", response_model=SpaceOut, summary="Cancel a scheduled Space")
async def cancel_space(space_id: str, user: UserDep, services: ServicesDep) -> SpaceOut:
    room, _ = await services.spaces.change(space_id, lambda room, now: room.cancel(user.id, now))
    return await _out(services, room, user.id)


@router.put("/{space_id}/reminder", status_code=204, summary="Remind me when it starts")
async def remind(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.remind(space_id, user, on=True)
    return Response(status_code=204)


@router.delete("/{space_id}/reminder", status_code=204, summary="Forget the reminder")
async def unremind(space_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.spaces.remind(space_id, user, on=False)
    return Response(status_code=204)
