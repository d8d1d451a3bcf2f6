"""The waiting room over HTTP, on the embedded default and on Redis: the 503 problem, the
ticket coming back (guests on the fast path, accounts on the route), and every way a
ticket can be wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import create_space, problem, sign_up
from tests.redis_server import running_redis
from tribune.admission.tickets import QueueTicket, Tickets

RATE = 2.0  # admissions per second per Space: a burst of 2, then one every 0.5 s


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture(scope="module", params=["embedded", "redis"])
def limited(
    request: pytest.FixtureRequest, start_server: Callable[..., LiveServer]
) -> Iterator[LiveServer]:
    extra = {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    server = start_server(media=False, admit_per_s=RATE, **extra)
    yield server
    server.stop()


def queued(r: httpx.Response) -> dict:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:tribune:problem:waiting-room"
    assert int(r.headers["Retry-After"]) == body["retry_after"] >= 1
    assert body["position"] >= 1
    assert body["estimated_wait_s"] > 0
    assert body["ticket"].startswith("tbq_")
    return body


def fill(client: httpx.Client, sid: str) -> dict:
    """Spend the burst; the next join is queued: its problem."""
    for _ in range(int(RATE)):
        assert client.post(f"/api/spaces/{sid}/join").status_code == 201
    return queued(client.post(f"/api/spaces/{sid}/join"))


def come_back(client: httpx.Client, sid: str, ticket: str) -> httpx.Response:
    """Wait in line as told (Retry-After), renewing the ticket, until the answer is not 503."""
    deadline = time.monotonic() + 15
    while True:
        r = client.post(f"/api/spaces/{sid}/join", json={"ticket": ticket})
        if r.status_code != 503:
            return r
        ticket = queued(r)["ticket"]
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(min(float(r.headers["Retry-After"]), 1.0))


def test_a_guest_waits_in_line_and_gets_in_with_the_ticket_once(limited: LiveServer):
    host = sign_up(limited.url)
    sid = create_space(host)["id"]
    with limited.client() as guest:
        body = fill(guest, sid)
        assert body["position"] == 1
        assert not body["prestart"]
        later = queued(guest.post(f"/api/spaces/{sid}/join"))
        assert later["position"] == 2  # nobody overtakes
        r = come_back(guest, sid, body["ticket"])
        assert r.status_code == 201, r.text
        assert r.json()["listener_id"].startswith("g_")
        problem(
            guest.post(f"/api/spaces/{sid}/join", json={"ticket": body["ticket"]}),
            409,
            contains="already used",
        )


def test_a_signed_in_listener_queues_too_but_the_stage_never_does(limited: LiveServer):
    host, fan = sign_up(limited.url), sign_up(limited.url)
    sid = create_space(host)["id"]
    with limited.client() as guest:
        fill(guest, sid)
    body = queued(fan.post(f"/api/spaces/{sid}/join"))
    r = host.post(f"/api/spaces/{sid}/join")
    assert r.status_code == 201, r.text
    assert come_back(fan, sid, body["ticket"]).json()["listener_id"] == fan.user["id"]


def test_wrong_tickets_and_bodies_are_refused_clearly(limited: LiveServer):
    host = sign_up(limited.url)
    sid, other = create_space(host)["id"], create_space(host)["id"]
    with limited.client() as guest:
        ticket = fill(guest, sid)["ticket"]
        join = f"/api/spaces/{sid}/join"
        body, sig = ticket.split(".")
        tampered = body[:8] + ("A" if body[8] != "A" else "B") + body[9:] + "." + sig
        problem(guest.post(join, json={"ticket": tampered}), 403, contains="altered")
        problem(
            guest.post(f"/api/spaces/{other}/join", json={"ticket": ticket}),
            403,
            contains="another Space",
        )
        tickets = Tickets(limited.secret, limited.settings.waiting_ticket_ttl_s)
        old = tickets.sign(QueueTicket(sid, "abc", False, 1, int(time.time()) - 3600))
        problem(guest.post(join, json={"ticket": old}), 410, contains="join again")
        for bad in ({"ticket": 5}, {"ticket": ""}, {"tiket": ticket}, {"ticket": "x" * 600}):
            problem(guest.post(join, json=bad), 422, contains="body.ti")
        problem(
            guest.post(join, content=b"{nope", headers={"content-type": "application/json"}), 400
        )
        big = {"ticket": "x" * (limited.settings.max_body_bytes + 10)}
        problem(guest.post(join, json=big), 413)
    for person in (host,):  # the same validation on the route (credentials)
        problem(person.post(join, json={"ticket": 5}), 422, contains="ticket")
        problem(person.post(join, json={"ticket": tampered}), 403, contains="altered")


def test_joins_before_a_scheduled_start_are_pre_queued(limited: LiveServer):
    host = sign_up(limited.url)
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sid = create_space(host, scheduled_start=start)["id"]
    with limited.client() as guest:
        early = queued(guest.post(f"/api/spaces/{sid}/join"))
        assert early["prestart"]
        assert early["retry_after"] == 30
        assert early["estimated_wait_s"] >= 3500
        assert host.post(f"/api/spaces/{sid}/start").status_code == 200
        time.sleep(limited.settings.state_max_age_s + 0.1)
        assert come_back(guest, sid, early["ticket"]).status_code == 201


def test_a_space_started_through_another_worker_is_live_here_at_once(
    redis_url: str,
    start_server: Callable[..., LiveServer],
    tmp_path_factory: pytest.TempPathFactory,
):
    """Two workers on one database and one Redis, their room state trusted for 5 s: the
    host starts the Space at its scheduled second through one (a control worker), and a
    listener pre-queued on the other gets in within a fraction of a second, not up to 5 s
    later (around the start each worker looks every 0.1 s)."""
    shared = {
        "media": False,
        "redis_url": redis_url,
        "data_dir": tmp_path_factory.mktemp("shared"),
        "secret_key": "s" * 64,
        "state_max_age_s": 5,
    }
    crowd, control = start_server(**shared), start_server(**shared)
    try:
        from datetime import UTC, datetime, timedelta

        host = sign_up(control.url)
        start = datetime.now(UTC) + timedelta(seconds=2)
        sid = create_space(host, scheduled_start=start.isoformat())["id"]
        with crowd.client() as guest:
            early = queued(guest.post(f"/api/spaces/{sid}/join"))
            assert early["prestart"]
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
            assert host.post(f"/api/spaces/{sid}/start").status_code == 200
            time.sleep(0.3)
            r = guest.post(f"/api/spaces/{sid}/join", json={"ticket": early["ticket"]})
            assert r.status_code == 201, r.text
    finally:
        crowd.stop()
        control.stop()
