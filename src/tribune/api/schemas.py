"""Request and response bodies, as they appear in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tribune.admission.pow import MAX_POW_CHARS


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUp(In):
    username: str = Field(examples=["ada"])
    password: str = Field(examples=["correct horse battery staple"])
    display_name: str | None = Field(None, examples=["Ada Lovelace"])


class LogIn(In):
    username: str
    password: str


class TokenCreate(In):
    name: str = Field(examples=["my recording bot"])


class SpaceCreate(In):
    title: str = Field(examples=["Friday night jazz"])
    description: str = ""
    #: absent: the Space goes live at once; else it is scheduled (up to 14 days ahead)
    scheduled_start: AwareDatetime | None = None
    allow_guests: bool = True


class SpaceEdit(In):
    title: str | None = None
    description: str | None = None
    scheduled_start: AwareDatetime | None = None
    allow_guests: bool | None = None


class InviteIn(In):
    user_id: str | None = None
    username: str | None = None
    role: Literal["speaker", "cohost"] = "speaker"

    @model_validator(mode="after")
    def _one_target(self) -> InviteIn:
        if (self.user_id is None) == (self.username is None):
            raise ValueError("give exactly one of user_id or username")
        return self


class JoinIn(In):
    #: the waiting-room ticket of an earlier join answered 503 (absent on a first join)
    ticket: str | None = Field(None, min_length=1, max_length=512)
    #: in attack mode, a solved proof of work: ``{window}:{rand}:{n}`` (admission.pow)
    pow: str | None = Field(None, min_length=1, max_length=MAX_POW_CHARS)


class OperatorAttackIn(In):
    #: ``auto``, ``on`` or ``off``; null: back to TRIBUNE_ATTACK_MODE
    mode: Literal["auto", "on", "off"] | None = None
    #: proof-of-work difficulty; null: back to TRIBUNE_POW_BITS
    pow_bits: int | None = Field(None, ge=1, le=32)


class ReactionIn(In):
    reaction: str = Field(examples=["clap"])


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str


class SessionOut(BaseModel):
    user: UserOut
    #: send back as X-CSRF-Token on cookie-authenticated writes
    csrf_token: str | None


class TokenOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class NewTokenOut(TokenOut):
    #: shown once; store it now
    token: str


class Counts(BaseModel):
    concurrent: int
    total: int


class MemberOut(BaseModel):
    user_id: str
    display_name: str
    role: str
    muted: bool
    self_muted: bool
    host_muted: bool


class SpaceUrls(BaseModel):
    self: str
    web: str
    state: str
    join: str
    events: str
    #: WHIP endpoint for speakers (RFC 9725); the LL-HLS playlist comes signed with a join
    whip: str
    #: once the Space has ended: its recording as a VOD playlist, and as one .m4a
    replay: str | None = None
    download: str | None = None


class Viewer(BaseModel):
    role: str
    reminded: bool
    request_pending: bool
    invitation: str | None
    removed: bool


class SpaceOut(BaseModel):
    id: str
    title: str
    description: str
    state: str
    host: MemberOut | None
    stage: list[MemberOut]
    allow_guests: bool
    created_at: datetime
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    listeners: Counts
    reminders: int
    urls: SpaceUrls
    #: present when the caller is signed in
    viewer: Viewer | None = None


class SpaceList(BaseModel):
    spaces: list[SpaceOut]


class JoinOut(BaseModel):
    space_id: str
    listener_id: str
    #: send as 'Authorization: Bearer <token>' on heartbeats and reactions
    listener_token: str
    expires_at: int
    heartbeat_interval_s: int
    urls: dict[str, str | None]


class HeartbeatOut(BaseModel):
    listeners: Counts
    next_heartbeat_s: int
    #: a fresh token when the old one passed half its life, else null
    listener_token: str | None = None
    expires_at: int | None = None


class RequestOut(BaseModel):
    user_id: str
    display_name: str
    requested_at: datetime


class NotificationOut(BaseModel):
    id: int
    kind: str
    space_id: str
    title: str
    created_at: datetime
