"""Listening: join, heartbeat, the shared room state, reactions."""

from __future__ import annotations

import time

from tests.conftest import LiveServer
from tests.helpers import bearer, create_space, join, problem, sign_up
from tribune.admission.tokens import ListenerTokens


def test_guest_join_returns_a_signed_token_and_next_urls(server: LiveServer, anon):
    """A guest gets a listener id, a verifiable token and where to go next."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    joined = join(anon, sid)
    assert joined["listener_id"].startswith("g_")
    assert joined["expires_at"] > time.time() + 60
    tokens = ListenerTokens(server.secret, server.settings.listener_token_ttl_s)
    parsed = tokens.verify(joined["listener_token"])
    assert (parsed.space_id, parsed.listener_id) == (sid, joined["listener_id"])
    assert joined["urls"]["state"] == f"/api/spaces/{sid}/state"
    assert joined["urls"]["heartbeat"] == f"/api/spaces/{sid}/heartbeat"


def test_signed_in_listener_id_is_their_user_id(server: LiveServer):
    """An account listens under its own id, counted once however often it joins."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    assert join(fan, sid)["listener_id"] == fan.user["id"]
    join(fan, sid)
    assert fan.get(f"/api/spaces/{sid}").json()["listeners"] == {"concurrent": 1, "total": 1}


def test_guests_refused_when_host_disallows(server: LiveServer, anon):
    """allow_guests=false: a guest must log in (401); an account may join."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host, allow_guests=False)["id"]
    problem(anon.post(f"/api/spaces/{sid}/join"), 401, contains="log in")
    join(fan, sid)


def test_heartbeat_keeps_count_and_state_document_shows_it(server: LiveServer, anon):
    """Joins and heartbeats make the count; the state document shows concurrent and total."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    tokens = [join(anon, sid)["listener_token"] for _ in range(4)]
    for token in tokens:
        r = anon.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token))
        assert r.status_code == 200
        assert r.json()["next_heartbeat_s"] == server.settings.heartbeat_interval_s
    assert r.json()["listeners"] == {"concurrent": 4, "total": 4}
    deadline = time.monotonic() + 5
    while anon.get(f"/api/spaces/{sid}/state").json()["listeners"]["concurrent"] != 4:
        assert time.monotonic() < deadline, "state never showed 4 listeners"
        time.sleep(0.1)


def test_tampered_and_expired_tokens_are_refused_and_not_counted(server: LiveServer, anon):
    """A forged or expired listener token gets 401 and does not enter the tally."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    good = join(anon, sid)["listener_token"]
    tampered = good[:-3] + ("AAA" if good[-3:] != "AAA" else "BBB")
    problem(
        anon.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(tampered)), 401, contains="altered"
    )
    expired, _ = ListenerTokens(server.secret, 60).issue(sid, "g_old", now=time.time() - 120)
    problem(
        anon.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(expired)), 401, contains="expired"
    )
    problem(anon.post(f"/api/spaces/{sid}/heartbeat"), 401, contains="listener token")
    counts = host.get(f"/api/spaces/{sid}").json()["listeners"]
    assert counts == {"concurrent": 1, "total": 1}


def test_token_for_another_space_is_forbidden(server: LiveServer, anon):
    """A listener token is good for its own Space only."""
    host = sign_up(server.url)
    a, b = create_space(host)["id"], create_space(host)["id"]
    token = join(anon, a)["listener_token"]
    problem(
        anon.post(f"/api/spaces/{b}/heartbeat", headers=bearer(token)),
        403,
        contains="another Space",
    )
    problem(
        anon.post(f"/api/spaces/{b}/reactions", json={"reaction": "clap"}, headers=bearer(token)),
        403,
        contains="another Space",
    )


def test_state_document_is_public_cacheable_and_identical_for_everyone(server: LiveServer):
    """Same bytes for a guest, the host and a listener; public, max-age=1; ETag revalidates."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host, title="Shared")["id"]
    with server.client() as guest:
        responses = [c.get(f"/api/spaces/{sid}/state") for c in (guest, host, fan)]
        for r in responses:
            assert r.status_code == 200
            assert r.headers["cache-control"] == "public, max-age=1"
            assert "set-cookie" not in r.headers
            assert "cookie" not in r.headers.get("vary", "").lower()
        assert len({r.content for r in responses}) == 1
        doc = responses[0].json()
        assert doc["title"] == "Shared"
        assert doc["state"] == "live"
        assert doc["stage"][0]["role"] == "host"
        assert doc["stage"][0]["muted"] is False
        assert set(doc["reactions"]) >= {"clap", "heart"}
        assert set(doc["listeners"]) == {"concurrent", "total"}
        etag = responses[0].headers["etag"]
        again = guest.get(f"/api/spaces/{sid}/state", headers={"If-None-Match": etag})
        assert again.status_code in (200, 304)
        if again.status_code == 304:
            assert again.content == b""


def test_reactions_are_counted_and_rate_limited(server: LiveServer, anon):
    """Reactions add up in the state; the sixth in a second is 429 and is not counted."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    token = join(anon, sid)["listener_token"]
    rate = int(server.settings.reaction_rate)
    statuses = [
        anon.post(
            f"/api/spaces/{sid}/reactions", json={"reaction": "clap"}, headers=bearer(token)
        ).status_code
        for _ in range(rate + 1)
    ]
    assert statuses[:rate] == [204] * rate
    assert statuses[rate] == 429
    r = anon.post(f"/api/spaces/{sid}/reactions", json={"reaction": "clap"}, headers=bearer(token))
    body = problem(r, 429, contains="reactions per second")
    assert body["retry_after"] > 0
    assert int(r.headers["Retry-After"]) >= 1
    assert host.post(f"/api/spaces/{sid}/reactions", json={"reaction": "fire"}).status_code == 204
    deadline = time.monotonic() + 5
    while True:
        reactions = anon.get(f"/api/spaces/{sid}/state").json()["reactions"]
        if reactions["clap"] == rate and reactions["fire"] == 1:
            break
        assert time.monotonic() < deadline, reactions
        time.sleep(0.1)


def test_bad_reactions(server: LiveServer, anon):
    """Unknown reactions and wrong types are refused; anonymous reactions need a token."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    problem(
        host.post(f"/api/spaces/{sid}/reactions", json={"reaction": "poop"}),
        422,
        contains="unknown reaction",
    )
    problem(host.post(f"/api/spaces/{sid}/reactions", json={"reaction": 3}), 422)
    problem(anon.post(f"/api/spaces/{sid}/reactions", json={"reaction": "clap"}), 401)


def test_no_joining_an_ended_space(server: LiveServer, anon):
    """Once ended, join and heartbeat answer 409; the total is kept."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    token = join(anon, sid)["listener_token"]
    host.post(f"/api/spaces/{sid}/end")
    problem(anon.post(f"/api/spaces/{sid}/join"), 409, contains="ended")
    problem(anon.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token)), 409)
    assert anon.get(f"/api/spaces/{sid}").json()["listeners"] == {"concurrent": 0, "total": 1}


def test_guest_and_account_joins_answer_alike(server: LiveServer, anon):
    """Guests are served by the ASGI fast path, accounts by the route: same document shape."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    guest = anon.post(f"/api/spaces/{sid}/join")
    account = fan.post(f"/api/spaces/{sid}/join")
    assert guest.status_code == account.status_code == 201
    assert guest.headers["content-type"] == account.headers["content-type"]
    assert guest.json().keys() == account.json().keys()
    assert guest.json()["urls"].keys() == account.json()["urls"].keys()
    assert guest.json()["urls"]["state"] == account.json()["urls"]["state"]


def test_fast_path_still_enforces_the_body_limit(server: LiveServer, anon):
    """An oversized guest join is refused by the guard before any join is issued."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    big = b"{" + b" " * (server.settings.max_body_bytes + 1) + b"}"
    r = anon.post(
        f"/api/spaces/{sid}/join", content=big, headers={"Content-Type": "application/json"}
    )
    problem(r, 413, contains="limit")
    problem(
        anon.post(f"/api/spaces/{sid}/join", content=b"x", headers={"Content-Type": "text/plain"}),
        415,
    )
    assert host.get(f"/api/spaces/{sid}").json()["listeners"]["total"] == 0
