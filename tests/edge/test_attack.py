"""Attack mode at the edge (issue 6): what dies at the edge, and what passes.

Every refusal is checked twice: the answer (a problem like the origin's, in its words) and
the origin's own record of what reached it (conftest's Counter): nothing, for everything
the edge refuses; the request itself, for everything it passes. Attack mode is switched
at run time through the origin's operator endpoint (difficulty 8 bits: solved here with
hashlib in a moment), and each test that uses it has Spaces of its own, so that no edge's
cached admission document outlives the test.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.edge.conftest import OPERATOR_KEY, UNLIMITED, Edge, Origin, edge_before
from tests.edge.test_edge import _forged, _tampered, problem
from tests.edge.test_stream import closing, listen, new_space, token_for
from tests.helpers import Person, create_space, sign_up
from tests.postgres import free_port
from tribune.admission.pow import WINDOW_S, Pow, leading_zero_bits, pow_key, solve
from tribune.admission.tickets import QueueTicket, Tickets
from tribune.admission.tokens import ListenerTokens
from tribune.edge.config import JOIN_OUTAGE_RETRY_S

#: the difficulty the tests switch attack mode on with
BITS = 8
#: how long any wait for the system to get somewhere may take
WAIT_S = 15.0
JSON = {"Content-Type": "application/json"}


# -- helpers ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def joins(origin: Origin, since: float) -> list[str]:
    """Join requests that reached the origin since ``since``."""
    return [s.path for s in origin.requests("/join", since)]


def set_attack_mode(origin: Origin, mode: str | None, bits: int | None = None) -> None:
    """The operator's switch, on the origin itself (None: back to the configured default)."""
    r = httpx.put(
        f"{origin.url}/api/operator/attack-mode",
        json={"mode": mode, "pow_bits": bits},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
    )
    assert r.status_code == 200, r.text


def until_edge_sees(edge: Edge, space_id: str, *, attack: bool) -> dict[str, Any]:
    """Poll the edge's copy of the admission document (cached a second) until it says
    ``attack``; njs reads the same copy."""
    deadline = time.monotonic() + WAIT_S
    with edge.client() as client:
        while True:
            r = client.get(f"/api/spaces/{space_id}/admission")
            assert r.status_code == 200, r.text
            doc: dict[str, Any] = r.json()
            if doc["attack_mode"] is attack:
                return doc
            assert time.monotonic() < deadline, f"the edge still says {doc}"
            time.sleep(0.05)


def solved(challenge: dict[str, Any]) -> str:
    """A solution of ``challenge``, as a browser would make it."""
    rand = secrets.token_urlsafe(12)
    n = solve(challenge["prefix"], challenge["bits"], rand)
    return f"{challenge['window']}:{rand}:{n}"


def pow_required(r: httpx.Response, contains: str, space_id: str, key: bytes) -> dict[str, Any]:
    """A 403 proof-of-work-required with a fresh challenge the client can solve."""
    body = problem(r, 403, contains)
    assert body["type"] == "urn:tribune:problem:proof-of-work-required"
    assert body["title"] == "Proof of work required"
    assert r.headers["cache-control"] == "no-store"
    challenge: dict[str, Any] = body["challenge"]
    now = int(time.time() // WINDOW_S)
    assert challenge["window"] in (now - 1, now)
    assert challenge == {
        "algorithm": "sha256-leading-zero-bits",
        "bits": BITS,
        "window": challenge["window"],
        "prefix": Pow(key).prefix(space_id, challenge["window"]),
        "expires_at": (challenge["window"] + 2) * WINDOW_S,
    }
    return challenge


def soon(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.fixture(scope="module")
def edge(start_edge: Callable[..., Edge]) -> Edge:
    """This module's own edge: nginx logs a too-large body as an [error], and the collapse
    tests want none in the shared edge's log."""
    return start_edge(*UNLIMITED)


@pytest.fixture(scope="module")
def host(origin: Origin) -> Iterator[Person]:
    person = sign_up(origin.url)
    yield person
    person.close()


@pytest.fixture
def attack(origin: Origin) -> Iterator[None]:
    """Attack mode on for every Space (difficulty BITS), back to the default afterwards."""
    set_attack_mode(origin, "on", BITS)
    yield
    set_attack_mode(origin, None)


# -- junk ---------------------------------------------------------------------------------


def test_paths_the_origin_does_not_serve_die_at_the_edge(origin: Origin, edge: Edge):
    """Only what the origin's route table serves passes (pages, static files, the API):
    anything else is a 404, a served path with another method a 405 with Allow, both
    problem JSON from the edge that the origin never sees."""
    mark = time.monotonic()
    with edge.client() as client:
        for path in (
            "/wp-login.php",
            "/.env",
            "/api",
            "/api/nothing",
            "/api/spaces/abc/nothing",
            "/api/health/more",
            "/static",
            "/hls",
            "/spaces/a/b/c",
            "/_tribune/admission/abc",
        ):
            r = client.get(path)
            problem(r, 404, "nothing here")
            assert r.headers["cache-control"] == "no-store"
        for method, path, allow in (
            ("POST", "/api/health", "GET"),
            ("DELETE", "/api/spaces", "GET, POST"),
            ("PUT", "/", "GET"),
            ("PUT", "/api/spaces/abc/state", "GET"),
            ("POST", "/api/spaces/abc/events", "GET"),
            ("POST", "/api/spaces/abc/admission", "GET, HEAD"),
            ("GET", "/api/spaces/abc/join", "POST"),
            ("GET", "/api/spaces/abc/heartbeat", "POST"),
            ("DELETE", "/api/spaces/abc/reactions", "POST"),
        ):
            r = client.request(method, path)
            problem(r, 405, "")
            assert r.headers["allow"] == allow, (method, path)
    assert origin.requests(since=mark) == []

    # What the origin serves passes.
    with edge.client() as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/static/api.js").status_code == 200
        assert client.get("/api/spaces").status_code == 200
        problem(client.get("/api/spaces/nosuchspace"), 404, "")  # a served path: the origin's
        assert client.get("/edge-health").json() == {"status": "ok"}
    reached = {s.path for s in origin.requests(since=mark)}
    assert {
        "/api/health",
        "/",
        "/static/api.js",
        "/api/spaces",
        "/api/spaces/nosuchspace",
    } <= reached


def test_join_bodies_are_checked_at_the_edge(origin: Origin, edge: Edge, host: Person):
    """Not JSON, not an object, unknown or ill-typed fields, too large (413, problem JSON
    rather than nginx's page), another method: answered at the edge as the origin would.
    No body, "{}" and whitespace are first joins and pass."""
    sid = create_space(host)["id"]
    path = f"/api/spaces/{sid}/join"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"content": b"{nope", "headers": JSON}, 400, "not valid JSON"),
        ({"content": b"ticket=x", "headers": {"Content-Type": "text/plain"}}, 415, "json"),
        ({"content": b"{}"}, 415, "not nothing"),  # no type given
        ({"json": [1, 2]}, 422, "body"),
        ({"json": "a string"}, 422, "body"),
        ({"json": {"tiket": "x"}}, 422, "body.tiket"),
        ({"json": {"ticket": 5}}, 422, "body.ticket"),
        ({"json": {"ticket": ""}}, 422, "body.ticket"),
        ({"json": {"ticket": "x" * 513}}, 422, "body.ticket"),
        ({"json": {"pow": "1:abcdefgh:1" + "1" * 90}}, 422, "body.pow"),
        ({"json": {"constructor": "x"}}, 422, "body.constructor"),
        ({"content": b"{" + b" " * 2000 + b"}", "headers": JSON}, 413, "larger"),
        ({"content": iter([b"{", b" " * 3000, b"}"]), "headers": JSON}, 413, "larger"),
    ]
    mark = time.monotonic()
    with edge.client() as client:
        for kwargs, status, contains in cases:
            r = client.post(path, **kwargs)
            body = problem(r, status, contains)
            assert r.headers["cache-control"] == "no-store"
            if status == 400:
                assert body["type"] == "urn:tribune:problem:malformed-json"
            if status == 422:
                assert body["errors"][0]["field"].startswith("body")
                assert body["instance"] == path
        r = client.put(path, json={})
        problem(r, 405, "POST")
        assert r.headers["allow"] == "POST"
        assert joins(origin, mark) == []
        # First joins, with or without an empty body, pass; so does a null field.
        for kwargs in (
            {},
            {"json": {}},
            {"content": b"  \n", "headers": JSON},
            {"json": {"pow": None}},
        ):
            r = client.post(path, **kwargs)
            assert r.status_code == 201, r.text
    assert len(joins(origin, mark)) == 4


# -- waiting-room tickets -----------------------------------------------------------------


def test_tickets_are_checked_at_the_edge_and_an_admitted_one_is_refused_there(
    origin: Origin, edge: Edge, host: Person
):
    """Forged, altered, another Space's, expired or malformed tickets are refused at the
    edge in the origin's words. Once the origin admitted a ticket, the edge refuses copies
    of it itself (409); with credentials they pass (a speaker may reuse one: the origin
    decides)."""
    sid = create_space(host, scheduled_start=soon(hours=1))["id"]
    other = create_space(host)["id"]
    path = f"/api/spaces/{sid}/join"
    tickets = Tickets(origin.secret, origin.settings.waiting_ticket_ttl_s)
    with edge.client() as guest:
        early = problem(guest.post(path), 503, "")
        assert early["type"] == "urn:tribune:problem:waiting-room"
        ticket = early["ticket"]
        payload, sig = ticket[len("tbq_") :].split(".")
        fields = _unb64(payload).decode().split(":")
        place = str(int(fields[4]) + 1000)  # a better place in line, the signature kept
        tampered = "tbq_" + _b64(":".join([*fields[:4], place, fields[5]]).encode()) + "." + sig
        raw = bytearray(_unb64(sig))
        raw[3] ^= 0x10
        forged = f"tbq_{payload}.{_b64(bytes(raw))}"
        old = tickets.sign(QueueTicket(sid, "old_ticket", False, 1, int(time.time()) - 3600))
        mine = tickets.sign(QueueTicket(other, "other_ticket", False, 1, int(time.time())))
        cases = [
            (path, forged, 403, "signature does not match"),
            (path, tampered, 403, "signature does not match"),
            (f"/api/spaces/{other}/join", ticket, 403, "another Space"),
            (path, mine, 403, "another Space"),
            (path, "tbq_garbage", 403, "not a waiting-room ticket"),
            (path, "tbl_" + ticket[4:], 403, "not a waiting-room ticket"),
            (path, "nope", 403, "not a waiting-room ticket"),
            (path, old, 410, "join again, without the ticket"),
        ]
        mark = time.monotonic()
        for where, bad, status, contains in cases:
            body = problem(guest.post(where, json={"ticket": bad}), status, contains)
            expected = "invalid-ticket" if status == 403 else "ticket-expired"
            assert body["type"] == f"urn:tribune:problem:{expected}"
        assert joins(origin, mark) == []

        # The Space starts: the ticket gets in (the origin renews it while it waits).
        assert host.post(f"/api/spaces/{sid}/start").status_code == 200
        deadline = time.monotonic() + WAIT_S
        shown = ticket
        while (r := guest.post(path, json={"ticket": shown})).status_code == 503:
            shown = r.json()["ticket"]
            assert time.monotonic() < deadline, "never admitted"
            time.sleep(0.1)
        assert r.status_code == 201, r.text
        ttl = origin.settings.waiting_ticket_ttl_s
        window = int(time.time() // ttl)
        marks = _marks(edge, "ticket")
        ticket_id = fields[2]
        assert any(
            (marks / str(w) / ticket_id[0] / ticket_id).exists() for w in (window, window - 1)
        )

        # Copies (the first one, the renewed one) die at the edge now.
        mark = time.monotonic()
        for copy in {ticket, shown}:
            body = problem(guest.post(path, json={"ticket": copy}), 409, "already used")
            assert body["type"] == "urn:tribune:problem:ticket-already-used"
        assert joins(origin, mark) == []
    # With credentials the origin decides (a listener, not on stage: 409 too).
    fan = sign_up(edge.url)
    try:
        problem(fan.post(path, json={"ticket": ticket}), 409, "already used")
    finally:
        fan.close()
    assert len(joins(origin, mark)) == 1


# -- attack mode ----------------------------------------------------------------------------


def test_in_attack_mode_unsolved_joins_die_at_the_edge(
    origin: Origin, edge: Edge, host: Person, attack: None
):
    """An anonymous join without a proof of work, with a malformed, weak or stale one, or
    with one already used, gets 403 proof-of-work-required and a fresh challenge from the
    edge; the origin sees none of them. A solved challenge passes, once."""
    sid = create_space(host)["id"]
    until_edge_sees(edge, sid, attack=True)
    key = pow_key(origin.secret)
    path = f"/api/spaces/{sid}/join"
    mark = time.monotonic()
    with edge.client() as guest:
        challenge = pow_required(guest.post(path), "solve the challenge", sid, key)
        prefix = challenge["prefix"]
        n = next(n for n in range(1000) if _zero_bits(f"{prefix}weakweak:{n}") < BITS)
        w = challenge["window"]
        stale = Pow(key).prefix(sid, w - 2)
        wrong = [
            ("1:2:3", "malformed"),
            ("x" * 40, "malformed"),
            (f"{w}:weakweak:{n}", f"fewer than {BITS} zero bits"),
            (f"{w - 2}:stalestale:{solve(stale, BITS, 'stalestale')}", "another minute"),
            (f"{w + 5}:futurefuture:1", "another minute"),
        ]
        for solution, contains in wrong:
            pow_required(guest.post(path, json={"pow": solution}), contains, sid, key)
        # Another Space's solution is (almost always) weak here: its prefix differs.
        theirs = Pow(key).prefix(create_space(host)["id"], w)
        rand = next(
            rand
            for rand in (secrets.token_urlsafe(12) for _ in range(100))
            if _zero_bits(f"{prefix}{rand}:{solve(theirs, BITS, rand)}") < BITS
        )
        foreign = f"{w}:{rand}:{solve(theirs, BITS, rand)}"
        pow_required(guest.post(path, json={"pow": foreign}), "zero bits", sid, key)
        assert joins(origin, mark) == []

        good = solved(challenge)
        r = guest.post(path, json={"pow": good})
        assert r.status_code == 201, r.text
        assert len(joins(origin, mark)) == 1
        # Used: refused by the edge, whichever worker takes it.
        for _ in range(4):
            pow_required(guest.post(path, json={"pow": good}), "already used", sid, key)
        assert len(joins(origin, mark)) == 1


def _zero_bits(text: str) -> int:
    return leading_zero_bits(_digest(text))


def test_in_attack_mode_credentials_and_tickets_pass_to_the_origin(
    origin: Origin, edge: Edge, host: Person, attack: None
):
    """The origin decides about accounts (a trusted one skips the proof of work, this new
    one does not) and about tickets (a join with a ticket already paid): the edge passes
    both without a proof of work. An unknown Space is a 404 from the edge."""
    sid = create_space(host, scheduled_start=soon(hours=1))["id"]
    until_edge_sees(edge, sid, attack=True)
    key = pow_key(origin.secret)
    path = f"/api/spaces/{sid}/join"
    fan = sign_up(edge.url)
    mark = time.monotonic()
    try:
        pow_required(fan.post(path), "solve the challenge", sid, key)  # the origin's answer
    finally:
        fan.close()
    assert len(joins(origin, mark)) == 1
    with edge.client() as guest:
        challenge = pow_required(guest.post(path), "solve the challenge", sid, key)
        early = problem(guest.post(path, json={"pow": solved(challenge)}), 503, "")
        assert early["prestart"]
        again = problem(guest.post(path, json={"ticket": early["ticket"]}), 503, "")
        assert again["position"] == early["position"]
        assert len(joins(origin, mark)) == 3
        mark = time.monotonic()
        problem(guest.post("/api/spaces/nosuchspace/join"), 404, "nosuchspace")
    assert joins(origin, mark) == []


def test_when_attack_mode_ends_joins_need_no_proof_of_work(
    origin: Origin, edge: Edge, host: Person
):
    """Switched on, then off again at run time: within a second or so the edge lets
    unsolved joins through again (and a solution is no longer looked at)."""
    sid = create_space(host)["id"]
    set_attack_mode(origin, "on", BITS)
    try:
        until_edge_sees(edge, sid, attack=True)
        with edge.client() as guest:
            problem(guest.post(f"/api/spaces/{sid}/join"), 403, "solve the challenge")
    finally:
        set_attack_mode(origin, "off")
    try:
        until_edge_sees(edge, sid, attack=False)
        with edge.client() as guest:
            assert guest.post(f"/api/spaces/{sid}/join").status_code == 201
            r = guest.post(f"/api/spaces/{sid}/join", json={"pow": "1:2:3"})
            assert r.status_code == 201, r.text
    finally:
        set_attack_mode(origin, None)


def test_marks_of_old_windows_are_swept(
    origin: Origin, start_edge: Callable[..., Edge], host: Person, attack: None
):
    """Burned proofs of work and admitted tickets are files in the marks directory;
    whoever opens a new bucket directory removes that bucket from windows that can no
    longer matter, and windows left empty."""
    edge = start_edge(*UNLIMITED)
    sid = create_space(host)["id"]
    until_edge_sees(edge, sid, attack=True)
    key = pow_key(origin.secret)
    path = f"/api/spaces/{sid}/join"
    with edge.client() as guest:
        challenge = pow_required(guest.post(path), "solve the challenge", sid, key)
        good = solved(challenge)
        w, rand, n = good.split(":")
        digest = _digest(f"{challenge['prefix']}{rand}:{n}")
        bucket = f"{digest[31]:02x}"
        root = _marks(edge, "pow")
        old = _plant(root, "7", bucket, ["a.b", "c.d"])
        kept = _plant(root, str(int(w) + 1), bucket, ["e.f"])  # a window not over yet
        assert guest.post(path, json={"pow": good}).status_code == 201
    assert (root / w / bucket / f"{sid}.{rand}").exists()
    assert not old.exists()
    assert not old.parent.exists()  # the window had nothing else: gone
    assert kept.exists()


def _marks(edge: Edge, kind: str) -> Path:
    """Where the edge keeps its marks of ``kind`` (pow, ticket), from its config."""
    found = re.search(rf"js_var \$tribune_{kind}_marks (\S+);", edge.conf.read_text())
    assert found
    root = Path(found[1])
    assert root.parent == edge.marks
    return root


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _plant(root: Path, window: str, bucket: str, names: list[str]) -> Path:
    """Marks as a worker would have left them (owned by the workers' user)."""
    owner = root.stat()
    where = root / window / bucket
    where.mkdir(parents=True, exist_ok=True)
    for path in (root / window, where, *(where / name for name in names)):
        path.touch(exist_ok=True)
        os.chown(path, owner.st_uid, owner.st_gid)
    return where


# -- heartbeats, reactions, streams: the listener token -------------------------------------


def test_heartbeats_and_reactions_need_a_valid_listener_token_at_the_edge(
    origin: Origin, edge: Edge, host: Person
):
    """A heartbeat without a listener token is a 401, with a forged, altered or another
    Space's one a 403, with an expired one a 410; reactions the same for listener tokens,
    while a session cookie passes. None of the refused reaches the origin."""
    sid, other = create_space(host)["id"], create_space(host)["id"]
    token = edge.join(sid)["listener_token"]
    others = edge.join(other)["listener_token"]
    expired, _ = ListenerTokens(origin.secret, 60).issue(sid, "g_late", now=time.time() - 120)
    api_token = host.post("/api/tokens", json={"name": "reactions"}).json()["token"]
    beat = f"/api/spaces/{sid}/heartbeat"
    react = f"/api/spaces/{sid}/reactions"
    clap = {"reaction": "clap"}
    mark = time.monotonic()
    with edge.client() as client:
        for headers, contains in (
            ({}, "listener token"),
            ({"Authorization": "Basic abc"}, "Bearer <token>"),
            ({"Authorization": "Bearer"}, "Bearer <token>"),
            ({"Authorization": f"Bearer {api_token}"}, "listener token"),
        ):
            r = client.post(beat, headers=headers)
            problem(r, 401, contains)
            assert r.headers["www-authenticate"] == 'Bearer realm="tribune"'
        problem(client.post(react, json=clap), 401, "log in")
        problem(
            client.post(react, json=clap, headers={"Authorization": "Bearer xyz"}), 401, "neither"
        )
        for bad, status, contains in (
            (_forged(token), 403, "signature does not match"),
            (_tampered(token), 403, "signature does not match"),
            (others, 403, "another Space"),
            ("tbl_garbage", 403, "malformed"),
            (expired, 410, "expired"),
        ):
            auth = {"Authorization": f"Bearer {bad}"}
            problem(client.post(beat, headers=auth), status, contains)
            problem(client.post(react, json=clap, headers=auth), status, contains)
        r = client.post(beat, content=b"x" * 5000, headers={"Authorization": f"Bearer {token}"})
        problem(r, 413, "larger")
    assert origin.requests("/heartbeat", mark) == []
    assert origin.requests("/reactions", mark) == []

    with edge.client() as client:
        auth = {"Authorization": f"Bearer {token}"}
        r = client.post(beat, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["next_heartbeat_s"] > 0
        assert client.post(react, json=clap, headers=auth).status_code == 204
        r = client.post(react, json=clap, headers={"Authorization": f"Bearer {api_token}"})
        assert r.status_code == 204, r.text
    fan = sign_up(edge.url)
    try:
        assert fan.post(f"/api/spaces/{sid}/join").status_code == 201
        assert fan.post(react, json=clap).status_code == 204  # the session cookie
    finally:
        fan.close()
    assert len(origin.requests("/heartbeat", mark)) == 1
    assert len(origin.requests("/reactions", mark)) == 3


def test_heartbeats_are_limited_per_listener_token(
    origin: Origin, start_edge: Callable[..., Edge], host: Person
):
    """--token-rate 1 --token-burst 5: a token that beats in a loop gets 429 from the edge
    (problem JSON, Retry-After), which the origin never sees; another token is not held
    back by it."""
    edge = start_edge(*UNLIMITED, "--token-rate", "1", "--token-burst", "5")
    sid = create_space(host)["id"]
    token, second = (edge.join(sid)["listener_token"] for _ in range(2))
    beat = f"/api/spaces/{sid}/heartbeat"
    mark = time.monotonic()
    sent = at_edge = 0
    with edge.client() as client:
        # The loop beats far faster than once a second: the burst runs out.
        while at_edge == 0:
            r = client.post(beat, headers={"Authorization": f"Bearer {token}"})
            sent += 1
            if r.status_code == 429 and "address or listener token" in r.json()["detail"]:
                assert r.headers["retry-after"] == "1"
                assert r.headers["content-type"] == "application/problem+json"
                at_edge += 1
            assert sent < 100
        assert sent > 5  # the burst
        r = client.post(beat, headers={"Authorization": f"Bearer {second}"})
        assert r.status_code == 200, r.text
    assert len(origin.requests("/heartbeat", mark)) == sent - at_edge + 1


async def test_streams_are_limited_per_listener_token(
    origin: Origin, start_edge: Callable[..., Edge]
):
    """--token-streams 2: a replayed token opens two streams, the third gets 429; another
    token of the same Space still listens."""
    edge = start_edge(*UNLIMITED, "--token-streams", "2")
    sid = new_space()
    token = token_for(origin, sid)
    path = f"/listen/{sid}/{token}"
    async with closing([await listen(edge.port, path) for _ in range(2)]) as first:
        assert [one.status for one in first] == [200, 200]
        refused = await listen(edge.port, path)
        refused.close()
        assert refused.status == 429, refused.headers
        assert refused.headers["content-type"] == "application/problem+json"
        other = ListenerTokens(origin.secret, 600).issue(sid, "g_other_listener")[0]
        async with closing([await listen(edge.port, f"/listen/{sid}/{other}")]) as (one,):
            assert one.status == 200


def test_a_join_no_origin_answers_gets_a_503_with_a_long_retry_after(
    origin: Origin, nginx: str
) -> None:
    """The origins are down (an outage of the join path): the edge says when to come back,
    about an outage's length, instead of a bare 502 that clients retry after a second."""
    dead = free_port()  # nothing listens there
    gone = dataclasses.replace(origin, url=f"http://127.0.0.1:{dead}", port=dead)
    with edge_before(gone, nginx, *UNLIMITED) as url:
        ticket = Tickets(origin.secret, origin.settings.waiting_ticket_ttl_s).sign(
            QueueTicket("abc", "t1", False, 1, int(time.time()))
        )
        for body in (None, {"ticket": ticket}):
            r = httpx.post(f"{url}/api/spaces/abc/join", json=body, timeout=10)
            found = problem(r, 503, "come back in")
            assert found["type"] == "urn:tribune:problem:join-unavailable"
            assert r.headers["Retry-After"] == str(JOIN_OUTAGE_RETRY_S)
