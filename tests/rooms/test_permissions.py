"""The permission table, walked through the real HTTP API: every action x every role.

For each pair a fresh Space is set up so that the action *can* succeed (a pending
request, a speaker to mute, an invitation to answer...). Then the role tries it: roles
in the table must succeed (2xx), all others must get 403. An action added to the domain
without a row here fails ``test_every_action_is_walked``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.audio import make_offer
from tests.conftest import LiveServer
from tests.helpers import Person, bearer, create_space, sign_up
from tribune.admission.tokens import ListenerTokens
from tribune.rooms.permissions import PERMISSIONS, Action
from tribune.rooms.roles import Role


@dataclass
class Cast:
    host: Person
    cohost: Person
    speaker: Person
    listener: Person
    target: Person  # a speaker the action is aimed at
    requester: Person  # has a pending request to speak
    invitee: Person  # to be invited


@dataclass
class Scene:
    sid: str
    cast: Cast
    offer: str  # a real WebRTC offer (aiortc), for publishing

    def uid(self, who: str) -> str:
        person: Person = getattr(self.cast, who)
        return str(person.user["id"])


def _events(c: httpx.Client, s: Scene) -> httpx.Response:
    with c.stream("GET", f"/api/spaces/{s.sid}/events") as r:
        r.read() if r.status_code != 200 else None
        return r


Request = Callable[[httpx.Client, Scene], httpx.Response]
P = "/api/spaces/{}"

#: action -> (state the Space is in, how to attempt it)
REQUESTS: dict[Action, tuple[str, Request]] = {
    Action.START: ("scheduled", lambda c, s: c.post(f"{P.format(s.sid)}/start")),
    Action.END: ("live", lambda c, s: c.post(f"{P.format(s.sid)}/end")),
    Action.CANCEL: ("scheduled", lambda c, s: c.post(f"{P.format(s.sid)}/cancel")),
    Action.EDIT: ("live", lambda c, s: c.patch(P.format(s.sid), json={"title": "edited"})),
    Action.VIEW_REQUESTS: ("live", lambda c, s: c.get(f"{P.format(s.sid)}/requests")),
    Action.ACCEPT_REQUEST: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/requests/{s.uid('requester')}/accept"),
    ),
    Action.DENY_REQUEST: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/requests/{s.uid('requester')}/deny"),
    ),
    Action.INVITE_SPEAKER: (
        "live",
        lambda c, s: c.post(
            f"{P.format(s.sid)}/invitations", json={"user_id": s.uid("invitee"), "role": "speaker"}
        ),
    ),
    Action.APPOINT_COHOST: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/members/{s.uid('target')}/cohost"),
    ),
    Action.MUTE_MEMBER: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/members/{s.uid('target')}/mute"),
    ),
    Action.DEMOTE: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/members/{s.uid('target')}/demote"),
    ),
    Action.REMOVE: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/members/{s.uid('target')}/remove"),
    ),
    Action.MUTE_SELF: ("live", lambda c, s: c.post(f"{P.format(s.sid)}/members/me/mute")),
    Action.LEAVE_STAGE: ("live", lambda c, s: c.post(f"{P.format(s.sid)}/members/me/leave")),
    Action.PUBLISH_AUDIO: (
        "live",
        lambda c, s: c.post(
            f"{P.format(s.sid)}/whip",
            content=s.offer.encode(),
            headers={"Content-Type": "application/sdp"},
        ),
    ),
    Action.SUBSCRIBE_EVENTS: ("live", _events),
    Action.LISTEN: ("live", lambda c, s: c.post(f"{P.format(s.sid)}/join")),
    Action.REACT: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/reactions", json={"reaction": "clap"}),
    ),
    Action.REQUEST_TO_SPEAK: ("live", lambda c, s: c.post(f"{P.format(s.sid)}/requests")),
    Action.ANSWER_INVITATION: (
        "live",
        lambda c, s: c.post(f"{P.format(s.sid)}/invitations/me/accept"),
    ),
    Action.REMIND: ("scheduled", lambda c, s: c.put(f"{P.format(s.sid)}/reminder")),
}


def test_every_action_is_walked():
    """No action in the domain escapes this walk."""
    assert set(REQUESTS) == set(Action) == set(PERMISSIONS)


@pytest.fixture(scope="module")
def cast(media_server: LiveServer) -> Cast:
    return Cast(*(sign_up(media_server.url) for _ in range(7)))


@pytest.fixture(scope="module")
def offer() -> str:
    async def make() -> str:
        pc, _ = await make_offer(440, sendrecv=False)
        sdp: str = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


@pytest.fixture
def scenes(cast: Cast, offer: str) -> Iterator[Callable[[str, Role, Action], Scene]]:
    """Make scenes; end their Spaces afterwards so that their audio stops."""
    made: list[Scene] = []

    def make(state: str, role: Role, action: Action) -> Scene:
        scene = _scene(cast, state, role, action, offer)
        made.append(scene)
        return scene

    yield make
    for scene in made:
        cast.host.post(f"/api/spaces/{scene.sid}/end")


def _invite_and_accept(host: Person, person: Person, sid: str, role: str) -> None:
    r = host.post(
        f"/api/spaces/{sid}/invitations", json={"user_id": person.user["id"], "role": role}
    )
    assert r.status_code == 201, r.text
    assert person.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204


def _scene(cast: Cast, state: str, role: Role, action: Action, offer: str) -> Scene:
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sid = create_space(cast.host, title="walk", scheduled_start=start)["id"]
    _invite_and_accept(cast.host, cast.cohost, sid, "cohost")
    _invite_and_accept(cast.host, cast.speaker, sid, "speaker")
    _invite_and_accept(cast.host, cast.target, sid, "speaker")
    assert cast.requester.post(f"/api/spaces/{sid}/requests").status_code == 201
    if action is Action.ANSWER_INVITATION and role in (Role.LISTENER, Role.SPEAKER):
        person = cast.listener if role is Role.LISTENER else cast.speaker
        next_role = "speaker" if role is Role.LISTENER else "cohost"
        r = cast.host.post(
            f"/api/spaces/{sid}/invitations", json={"user_id": person.user["id"], "role": next_role}
        )
        assert r.status_code == 201, r.text
    if state == "live":
        assert cast.host.post(f"/api/spaces/{sid}/start").status_code == 200
    return Scene(sid, cast, offer)


@pytest.fixture
def actor_for(media_server: LiveServer, cast: Cast):
    opened: list[httpx.Client] = []

    def actor(role: Role, scene: Scene) -> httpx.Client:
        if role is Role.GUEST:
            guest = media_server.client()
            opened.append(guest)
            answer = guest.post(f"/api/spaces/{scene.sid}/join")
            if answer.status_code == 503:
                # Before the start a join waits in the pre-queue (docs/operations.md): give
                # the guest the token it will get at the start, signed as the server does.
                assert answer.json()["type"] == "urn:tribune:problem:waiting-room"
                token, _ = ListenerTokens(media_server.secret, 3600).issue(scene.sid, "g_early")
            else:
                assert answer.status_code == 201, answer.text
                token = answer.json()["listener_token"]
            guest.headers.update(bearer(token))
            return guest
        return {
            Role.HOST: cast.host,
            Role.COHOST: cast.cohost,
            Role.SPEAKER: cast.speaker,
            Role.LISTENER: cast.listener,
        }[role]

    yield actor
    for client in opened:
        client.close()


@pytest.mark.parametrize("role", list(Role), ids=str)
@pytest.mark.parametrize("action", list(Action), ids=str)
def test_role_action(scenes, actor_for, role: Role, action: Action):
    """Allowed by the table -> 2xx; not allowed -> 403 with a reason."""
    state, attempt = REQUESTS[action]
    scene = scenes(state, role, action)
    response = attempt(actor_for(role, scene), scene)
    if role in PERMISSIONS[action]:
        assert 200 <= response.status_code < 300, (role, action, response.text)
    else:
        assert response.status_code == 403, (role, action, response.status_code)
        body = response.json()
        assert body["status"] == 403
        assert body["detail"]
