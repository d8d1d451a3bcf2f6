"""A Space and its stage, as an aggregate the service loads, changes and saves.

Each operation checks the permission table, the state machine and the stage limits,
changes the aggregate in memory and returns the :class:`RoomEvent` list it caused; the
service layer persists the change and publishes the events. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tribune.exceptions import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RemovedFromSpace,
    StageFull,
)
from tribune.rooms.permissions import Action, authorize, authorize_on
from tribune.rooms.roles import MAX_COHOSTS, MAX_SPEAKERS, Role

logger = logging.getLogger(__name__)

TITLE_MAX = 100
DESCRIPTION_MAX = 1000
MAX_SCHEDULE_AHEAD = timedelta(days=14)


class SpaceState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


TRANSITIONS: dict[SpaceState, frozenset[SpaceState]] = {
    SpaceState.SCHEDULED: frozenset({SpaceState.LIVE, SpaceState.CANCELLED}),
    SpaceState.LIVE: frozenset({SpaceState.ENDED}),
    SpaceState.ENDED: frozenset(),
    SpaceState.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class RoomEvent:
    """Something that happened in a Space; ``data`` is JSON-ready."""

    type: str
    data: dict[str, Any]


def validate_title(title: str) -> str:
    cleaned = title.strip()
    if not cleaned:
        raise InvalidInput("title must not be empty")
    if len(cleaned) > TITLE_MAX:
        raise InvalidInput(f"title is {len(cleaned)} characters long; the limit is {TITLE_MAX}")
    return cleaned


def validate_description(description: str) -> str:
    cleaned = description.strip()
    if len(cleaned) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"description is {len(cleaned)} characters long; the limit is {DESCRIPTION_MAX}"
        )
    return cleaned


def validate_schedule(start: datetime, now: datetime) -> datetime:
    if start.tzinfo is None:
        raise InvalidInput("scheduled_start must carry a timezone offset, e.g. 2026-11-21T20:00Z")
    if start <= now:
        raise InvalidInput(f"scheduled_start {start.isoformat()} is in the past")
    if start - now > MAX_SCHEDULE_AHEAD:
        raise InvalidInput(
            f"scheduled_start {start.isoformat()} is more than {MAX_SCHEDULE_AHEAD.days} days ahead"
        )
    return start


@dataclass
class StageMember:
    user_id: str
    display_name: str
    role: Role
    joined_at: datetime
    host_muted: bool = False
    self_muted: bool = False

    def __post_init__(self) -> None:
        if not self.role.on_stage:
            raise ValueError(f"{self.role} is not a stage role")

    @property
    def muted(self) -> bool:
        return self.host_muted or self.self_muted

    def public(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "role": self.role.value,
            "muted": self.muted,
            "self_muted": self.self_muted,
            "host_muted": self.host_muted,
        }


@dataclass(frozen=True)
class SpeakRequest:
    user_id: str
    display_name: str
    requested_at: datetime


@dataclass(frozen=True)
class Invitation:
    user_id: str
    role: Role
    invited_by: str
    created_at: datetime

    def __post_init__(self) -> None:
        if self.role not in (Role.SPEAKER, Role.COHOST):
            raise ValueError(f"cannot invite to role {self.role}")


@dataclass
class Room:
    """One Space: its lifecycle, its stage and its audience's standing requests."""

    id: str
    host_id: str
    title: str
    description: str
    state: SpaceState
    allow_guests: bool
    created_at: datetime
    scheduled_start: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    members: dict[str, StageMember] = field(default_factory=dict)
    requests: dict[str, SpeakRequest] = field(default_factory=dict)
    invitations: dict[str, Invitation] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    # -- who is who ---------------------------------------------------------------------

    def role_of(self, user_id: str | None) -> Role:
        if user_id is None:
            return Role.GUEST
        member = self.members.get(user_id)
        return member.role if member else Role.LISTENER

    def count(self, role: Role) -> int:
        return sum(1 for m in self.members.values() if m.role is role)

    def check_not_removed(self, user_id: str | None) -> None:
        if user_id is not None and user_id in self.removed:
            raise RemovedFromSpace("you were removed from this Space and cannot rejoin it")

    def _check_open(self, doing: str) -> None:
        if self.state in (SpaceState.ENDED, SpaceState.CANCELLED):
            raise InvalidTransition(f"cannot {doing}: the Space is {self.state.value}")

    def _check_seat(self, role: Role) -> None:
        limit = {Role.COHOST: MAX_COHOSTS, Role.SPEAKER: MAX_SPEAKERS}[role]
        if self.count(role) >= limit:
            noun = "co-hosts" if role is Role.COHOST else "speakers"
            raise StageFull(f"the stage already has {limit} {noun}, the most a Space can have")

    def _member(self, user_id: str) -> StageMember:
        member = self.members.get(user_id)
        if member is None:
            raise NotFound(f"user {user_id} is not on the stage of this Space")
        return member

    # -- lifecycle ------------------------------------------------------------------------

    def _set_state(self, new: SpaceState, now: datetime) -> RoomEvent:
        """The one place the state changes: checks the transition, logs it, makes the event."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(f"a {old.value} Space cannot become {new.value}")
        self.state = new
        if new is SpaceState.LIVE:
            self.started_at = now
        elif new in (SpaceState.ENDED, SpaceState.CANCELLED):
            self.ended_at = now
        logger.info("space %s: %s -> %s", self.id, old.value, new.value)
        return RoomEvent("space.state", {"old": old.value, "new": new.value})

    def start(self, actor: str, now: datetime) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.START)
        return [self._set_state(SpaceState.LIVE, now)]

    def end(self, actor: str, now: datetime) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.END)
        events = [self._set_state(SpaceState.ENDED, now)]
        self.requests.clear()
        self.invitations.clear()
        return events

    def cancel(self, actor: str, now: datetime) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.CANCEL)
        return [self._set_state(SpaceState.CANCELLED, now)]

    def edit(
        self,
        actor: str,
        now: datetime,
        *,
        title: str | None = None,
        description: str | None = None,
        scheduled_start: datetime | None = None,
        allow_guests: bool | None = None,
    ) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.EDIT)
        self._check_open("edit it")
        changes: dict[str, Any] = {}
        if title is not None:
            self.title = changes["title"] = validate_title(title)
        if description is not None:
            self.description = changes["description"] = validate_description(description)
        if scheduled_start is not None:
            if self.state is not SpaceState.SCHEDULED:
                raise InvalidTransition("only a scheduled Space can be rescheduled")
            self.scheduled_start = validate_schedule(scheduled_start, now)
            changes["scheduled_start"] = self.scheduled_start.isoformat()
        if allow_guests is not None:
            self.allow_guests = changes["allow_guests"] = allow_guests
        return [RoomEvent("space.updated", changes)] if changes else []

    # -- the audience -----------------------------------------------------------------------

    def request_to_speak(self, actor: str, display_name: str, now: datetime) -> list[RoomEvent]:
        self.check_not_removed(actor)
        authorize(self.role_of(actor), Action.REQUEST_TO_SPEAK)
        self._check_open("request to speak")
        if actor in self.requests:
            raise Conflict("you have already asked to speak; wait for a host to answer")
        self.requests[actor] = SpeakRequest(actor, display_name, now)
        return [RoomEvent("request.created", {"user_id": actor, "display_name": display_name})]

    def withdraw_request(self, actor: str) -> list[RoomEvent]:
        if self.requests.pop(actor, None) is None:
            raise NotFound("you have no pending request to speak in this Space")
        return [RoomEvent("request.withdrawn", {"user_id": actor})]

    def answer_request(
        self, actor: str, user_id: str, accept: bool, now: datetime
    ) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.ACCEPT_REQUEST if accept else Action.DENY_REQUEST)
        self._check_open("answer requests")
        request = self.requests.get(user_id)
        if request is None:
            raise NotFound(f"user {user_id} has no pending request to speak")
        if not accept:
            del self.requests[user_id]
            return [RoomEvent("request.denied", {"user_id": user_id, "by": actor})]
        self._check_seat(Role.SPEAKER)
        del self.requests[user_id]
        self.members[user_id] = StageMember(user_id, request.display_name, Role.SPEAKER, now)
        return [
            RoomEvent("request.accepted", {"user_id": user_id, "by": actor}),
            RoomEvent("stage.joined", self.members[user_id].public()),
        ]

    def invite(self, actor: str, user_id: str, role: Role, now: datetime) -> list[RoomEvent]:
        action = Action.APPOINT_COHOST if role is Role.COHOST else Action.INVITE_SPEAKER
        authorize(self.role_of(actor), action)
        self._check_open("invite")
        if role not in (Role.SPEAKER, Role.COHOST):
            raise InvalidInput("an invitation is to be a speaker or a co-host")
        self.check_not_removed(user_id)
        current = self.role_of(user_id)
        if current.rank >= role.rank:
            raise Conflict(f"user {user_id} is already a {current.value} in this Space")
        self._check_seat(role)
        self.invitations[user_id] = Invitation(user_id, role, actor, now)
        return [RoomEvent("invitation.created", {"user_id": user_id, "role": role.value})]

    def answer_invitation(
        self, actor: str, accept: bool, display_name: str, now: datetime
    ) -> list[RoomEvent]:
        self.check_not_removed(actor)
        authorize(self.role_of(actor), Action.ANSWER_INVITATION)
        self._check_open("answer an invitation")
        invitation = self.invitations.get(actor)
        if invitation is None:
            raise NotFound("you have no pending invitation in this Space")
        if not accept:
            del self.invitations[actor]
            return [RoomEvent("invitation.declined", {"user_id": actor})]
        self._check_seat(invitation.role)
        del self.invitations[actor]
        self.requests.pop(actor, None)
        existing = self.members.get(actor)
        if existing is not None:
            existing.role = invitation.role
            return [RoomEvent("stage.role", existing.public())]
        self.members[actor] = StageMember(actor, display_name, invitation.role, now)
        return [RoomEvent("stage.joined", self.members[actor].public())]

    # -- the stage --------------------------------------------------------------------------

    def appoint_cohost(self, actor: str, user_id: str) -> list[RoomEvent]:
        """Make a speaker already on stage a co-host (an off-stage user gets an invitation)."""
        member = self._member(user_id)
        authorize_on(self.role_of(actor), Action.APPOINT_COHOST, member.role)
        self._check_open("appoint a co-host")
        if member.role is not Role.SPEAKER:
            raise Conflict(f"user {user_id} is a {member.role.value}, not a speaker")
        self._check_seat(Role.COHOST)
        member.role = Role.COHOST
        return [RoomEvent("stage.role", member.public())]

    def set_host_mute(self, actor: str, user_id: str, muted: bool) -> list[RoomEvent]:
        member = self._member(user_id)
        authorize_on(self.role_of(actor), Action.MUTE_MEMBER, member.role)
        self._check_open("mute")
        member.host_muted = muted
        return [RoomEvent("stage.muted", member.public())]

    def set_self_mute(self, actor: str, muted: bool) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.MUTE_SELF)
        member = self._member(actor)
        member.self_muted = muted
        return [RoomEvent("stage.muted", member.public())]

    def demote(self, actor: str, user_id: str) -> list[RoomEvent]:
        """One step down: co-host -> speaker -> listener."""
        member = self._member(user_id)
        authorize_on(self.role_of(actor), Action.DEMOTE, member.role)
        self._check_open("demote")
        if member.role is Role.COHOST:
            member.role = Role.SPEAKER
            return [RoomEvent("stage.role", member.public())]
        del self.members[user_id]
        return [RoomEvent("stage.left", {"user_id": user_id, "reason": "demoted"})]

    def leave_stage(self, actor: str) -> list[RoomEvent]:
        authorize(self.role_of(actor), Action.LEAVE_STAGE)
        del self.members[actor]
        return [RoomEvent("stage.left", {"user_id": actor, "reason": "left"})]

    def remove(self, actor: str, user_id: str) -> list[RoomEvent]:
        """Take someone off the stage and out of the Space for good."""
        if user_id == actor:
            raise PermissionDenied("you cannot remove yourself; leave the stage instead")
        authorize_on(self.role_of(actor), Action.REMOVE, self.role_of(user_id))
        if user_id in self.removed:
            raise Conflict(f"user {user_id} is already removed from this Space")
        events = []
        if self.members.pop(user_id, None) is not None:
            events.append(RoomEvent("stage.left", {"user_id": user_id, "reason": "removed"}))
        self.requests.pop(user_id, None)
        self.invitations.pop(user_id, None)
        self.removed.add(user_id)
        events.append(RoomEvent("member.removed", {"user_id": user_id, "by": actor}))
        return events

    def snapshot(self) -> Room:
        """A deep copy, so the store can diff before against after."""
        return dataclasses.replace(
            self,
            members={k: dataclasses.replace(v) for k, v in self.members.items()},
            requests=dict(self.requests),
            invitations=dict(self.invitations),
            removed=set(self.removed),
        )
