"""Domain objects to response bodies."""

from __future__ import annotations

from tribune.api.schemas import Counts, MemberOut, SpaceOut, SpaceUrls, Viewer
from tribune.presence.base import ListenerCounts
from tribune.rooms.roles import Role
from tribune.rooms.space import Room, SpaceState


def space_urls(space_id: str, ended: bool = False) -> SpaceUrls:
    base = f"/api/spaces/{space_id}"
    return SpaceUrls(
        self=base,
        web=f"/spaces/{space_id}",
        state=f"{base}/state",
        join=f"{base}/join",
        events=f"{base}/events",
        whip=f"{base}/whip",
        replay=f"/replay/{space_id}/index.m3u8" if ended else None,
        download=f"/replay/{space_id}/download.m4a" if ended else None,
    )


def space_out(
    room: Room, counts: ListenerCounts, reminders: int, viewer: Viewer | None = None
) -> SpaceOut:
    stage = [MemberOut(**m.public()) for m in room.members.values()]
    host = next((m for m in stage if m.role == Role.HOST.value), None)
    return SpaceOut(
        id=room.id,
        title=room.title,
        description=room.description,
        state=room.state.value,
        host=host,
        stage=stage,
        allow_guests=room.allow_guests,
        created_at=room.created_at,
        scheduled_start=room.scheduled_start,
        started_at=room.started_at,
        ended_at=room.ended_at,
        listeners=Counts(concurrent=counts.concurrent, total=counts.total),
        reminders=reminders,
        urls=space_urls(room.id, ended=room.state is SpaceState.ENDED),
        viewer=viewer,
    )


def viewer_of(room: Room, user_id: str, reminded: bool) -> Viewer:
    invitation = room.invitations.get(user_id)
    return Viewer(
        role=room.role_of(user_id).value,
        reminded=reminded,
        request_pending=user_id in room.requests,
        invitation=invitation.role.value if invitation else None,
        removed=user_id in room.removed,
    )
