"""The stage over HTTP: requests, invitations, limits, moderation, removal."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.helpers import Person, create_space, join, problem, sign_up


def stage(client: httpx.Client, sid: str) -> dict[str, dict]:
    return {m["user_id"]: m for m in client.get(f"/api/spaces/{sid}").json()["stage"]}


def bring_on_stage(host: Person, person: Person, sid: str) -> None:
    assert person.post(f"/api/spaces/{sid}/requests").status_code == 201
    r = host.post(f"/api/spaces/{sid}/requests/{person.user['id']}/accept")
    assert r.status_code == 204, r.text


def test_request_accept_deny(server: LiveServer):
    """The host sees the queue in order, accepts one and denies the other."""
    host, a, b = (sign_up(server.url) for _ in range(3))
    sid = create_space(host)["id"]
    for p in (a, b):
        assert p.post(f"/api/spaces/{sid}/requests").status_code == 201
    problem(a.post(f"/api/spaces/{sid}/requests"), 409, contains="already")
    queue = host.get(f"/api/spaces/{sid}/requests").json()
    assert [q["user_id"] for q in queue] == [a.user["id"], b.user["id"]]
    assert host.post(f"/api/spaces/{sid}/requests/{a.user['id']}/accept").status_code == 204
    assert host.post(f"/api/spaces/{sid}/requests/{b.user['id']}/deny").status_code == 204
    assert stage(host, sid)[a.user["id"]]["role"] == "speaker"
    assert b.user["id"] not in stage(host, sid)
    assert host.get(f"/api/spaces/{sid}/requests").json() == []
    problem(host.post(f"/api/spaces/{sid}/requests/{b.user['id']}/accept"), 404)


def test_withdraw_request(server: LiveServer):
    """A listener can take back a request."""
    host, a = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    a.post(f"/api/spaces/{sid}/requests")
    assert a.delete(f"/api/spaces/{sid}/requests/me").status_code == 204
    assert host.get(f"/api/spaces/{sid}/requests").json() == []
    problem(a.delete(f"/api/spaces/{sid}/requests/me"), 404)


def test_eleventh_speaker_is_refused_and_nothing_changes(server: LiveServer):
    """With ten speakers on stage, accepting another is 409 and the stage stays at ten."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    for _ in range(10):
        bring_on_stage(host, sign_up(server.url), sid)
    late = sign_up(server.url)
    late.post(f"/api/spaces/{sid}/requests")
    problem(
        host.post(f"/api/spaces/{sid}/requests/{late.user['id']}/accept"),
        409,
        contains="10 speakers",
    )
    roles = [m["role"] for m in stage(host, sid).values()]
    assert roles.count("speaker") == 10
    assert late.user["id"] not in stage(host, sid)
    assert [q["user_id"] for q in host.get(f"/api/spaces/{sid}/requests").json()] == [
        late.user["id"]
    ]


def test_third_cohost_is_refused(server: LiveServer):
    """Two co-hosts at most, whether invited or promoted."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    people = [sign_up(server.url) for _ in range(3)]
    for p in people:
        bring_on_stage(host, p, sid)
    for p in people[:2]:
        assert host.post(f"/api/spaces/{sid}/members/{p.user['id']}/cohost").status_code == 204
    problem(
        host.post(f"/api/spaces/{sid}/members/{people[2].user['id']}/cohost"),
        409,
        contains="2 co-hosts",
    )
    outsider = sign_up(server.url)
    problem(
        host.post(
            f"/api/spaces/{sid}/invitations",
            json={"username": outsider.user["username"], "role": "cohost"},
        ),
        409,
    )
    assert stage(host, sid)[people[2].user["id"]]["role"] == "speaker"


def test_invitation_accept_and_decline(server: LiveServer):
    """A host invites by username; the invitee sees it and accepts or declines."""
    host, a, b = (sign_up(server.url) for _ in range(3))
    sid = create_space(host)["id"]
    for p in (a, b):
        r = host.post(f"/api/spaces/{sid}/invitations", json={"username": p.user["username"]})
        assert r.status_code == 201, r.text
    assert a.get(f"/api/spaces/{sid}").json()["viewer"]["invitation"] == "speaker"
    assert a.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204
    assert b.post(f"/api/spaces/{sid}/invitations/me/decline").status_code == 204
    assert stage(host, sid)[a.user["id"]]["role"] == "speaker"
    assert b.user["id"] not in stage(host, sid)
    problem(host.post(f"/api/spaces/{sid}/invitations", json={"username": "no_such_user"}), 404)
    problem(host.post(f"/api/spaces/{sid}/invitations", json={}), 422, contains="exactly one")
    problem(
        host.post(f"/api/spaces/{sid}/invitations", json={"user_id": b.user["id"], "role": "host"}),
        422,
    )


def test_mute_host_and_self(server: LiveServer):
    """Host mute and self mute both show in the room state, and are separate."""
    host, a = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    bring_on_stage(host, a, sid)
    aid = a.user["id"]
    assert host.post(f"/api/spaces/{sid}/members/{aid}/mute").status_code == 204
    assert a.post(f"/api/spaces/{sid}/members/me/unmute").status_code == 204
    member = stage(host, sid)[aid]
    assert (member["muted"], member["host_muted"], member["self_muted"]) == (True, True, False)
    host.post(f"/api/spaces/{sid}/members/{aid}/unmute")
    assert stage(host, sid)[aid]["muted"] is False
    a.post(f"/api/spaces/{sid}/members/me/mute")
    assert stage(host, sid)[aid]["self_muted"] is True


def test_speaker_cannot_moderate(server: LiveServer):
    """A speaker trying a host action gets 403 and nothing changes."""
    host, a, b = (sign_up(server.url) for _ in range(3))
    sid = create_space(host)["id"]
    bring_on_stage(host, a, sid)
    bring_on_stage(host, b, sid)
    before = stage(host, sid)
    problem(a.post(f"/api/spaces/{sid}/members/{b.user['id']}/mute"), 403, contains="speaker")
    problem(a.post(f"/api/spaces/{sid}/members/{b.user['id']}/remove"), 403)
    problem(a.post(f"/api/spaces/{sid}/end"), 403)
    assert stage(host, sid) == before
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "live"


def test_cohost_cannot_touch_the_host(server: LiveServer):
    """A co-host outranks speakers, not the host."""
    host, co = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    bring_on_stage(host, co, sid)
    host.post(f"/api/spaces/{sid}/members/{co.user['id']}/cohost")
    problem(co.post(f"/api/spaces/{sid}/members/{host.user['id']}/mute"), 403, contains="host")
    problem(co.post(f"/api/spaces/{sid}/members/{host.user['id']}/remove"), 403)
    assert stage(host, sid)[host.user["id"]]["muted"] is False


def test_demote_and_leave(server: LiveServer):
    """Demote steps down; a speaker can leave the stage by themselves."""
    host, a, b = (sign_up(server.url) for _ in range(3))
    sid = create_space(host)["id"]
    bring_on_stage(host, a, sid)
    bring_on_stage(host, b, sid)
    host.post(f"/api/spaces/{sid}/members/{a.user['id']}/cohost")
    host.post(f"/api/spaces/{sid}/members/{a.user['id']}/demote")
    assert stage(host, sid)[a.user["id"]]["role"] == "speaker"
    host.post(f"/api/spaces/{sid}/members/{a.user['id']}/demote")
    assert a.user["id"] not in stage(host, sid)
    assert b.post(f"/api/spaces/{sid}/members/me/leave").status_code == 204
    assert b.user["id"] not in stage(host, sid)
    problem(host.post(f"/api/spaces/{sid}/members/me/leave"), 403, contains="host")


def test_removed_user_cannot_rejoin(server: LiveServer):
    """Removed: off the stage, out of the count, and refused on join, request and react."""
    host, a = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    bring_on_stage(host, a, sid)
    join(a, sid)
    assert host.post(f"/api/spaces/{sid}/members/{a.user['id']}/remove").status_code == 204
    assert a.user["id"] not in stage(host, sid)
    problem(a.post(f"/api/spaces/{sid}/join"), 403, contains="removed")
    problem(a.post(f"/api/spaces/{sid}/requests"), 403, contains="removed")
    problem(a.post(f"/api/spaces/{sid}/reactions", json={"reaction": "clap"}), 403)
    assert host.get(f"/api/spaces/{sid}").json()["listeners"]["concurrent"] == 0
    assert a.get(f"/api/spaces/{sid}").json()["viewer"]["removed"] is True
    problem(host.post(f"/api/spaces/{sid}/members/{a.user['id']}/remove"), 409)
