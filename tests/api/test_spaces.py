"""Spaces over HTTP: create, schedule, lifecycle, listings, reminders, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.helpers import create_space, join, problem, sign_up


def soon(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def test_create_now_goes_live_and_carries_its_urls(any_server: LiveServer):
    """No schedule: live at once, host on stage, URLs for what comes next."""
    host = sign_up(any_server.url)
    space = create_space(host, title="  Friday jazz  ", description="bring snacks")
    assert space["state"] == "live"
    assert space["title"] == "Friday jazz"
    assert space["host"]["user_id"] == host.user["id"]
    assert [m["role"] for m in space["stage"]] == ["host"]
    urls = space["urls"]
    assert urls["state"] == f"/api/spaces/{space['id']}/state"
    assert urls["join"].endswith("/join")
    assert urls["events"].endswith("/events")
    assert urls["whip"] == f"/api/spaces/{space['id']}/whip"
    assert space["viewer"]["role"] == "host"


def test_schedule_start_end_with_listings(any_server: LiveServer):
    """scheduled -> live -> ended, and each listing shows it at the right time."""
    host = sign_up(any_server.url)
    space = create_space(host, title="Town hall", scheduled_start=soon(hours=2))
    sid = space["id"]
    assert space["state"] == "scheduled"

    def listed(state: str) -> bool:
        r = host.get("/api/spaces", params={"state": state, "limit": 100})
        return sid in [s["id"] for s in r.json()["spaces"]]

    assert listed("upcoming")
    assert not listed("live")
    started = host.post(f"/api/spaces/{sid}/start")
    assert started.json()["state"] == "live"
    assert started.json()["started_at"]
    assert listed("live")
    assert not listed("upcoming")
    ended = host.post(f"/api/spaces/{sid}/end")
    assert ended.json()["state"] == "ended"
    assert listed("ended")
    assert not listed("live")
    problem(host.post(f"/api/spaces/{sid}/start"), 409, contains="ended")


def test_live_listing_carries_listener_counts(server: LiveServer, anon):
    """Live now shows how many are listening."""
    host = sign_up(server.url)
    sid = create_space(host)["id"]
    for _ in range(3):
        join(anon, sid)
    live = {s["id"]: s for s in anon.get("/api/spaces?state=live&limit=100").json()["spaces"]}
    assert live[sid]["listeners"] == {"concurrent": 3, "total": 3}


def test_cancel_only_while_scheduled(server: LiveServer):
    """A scheduled Space can be cancelled; a live one cannot."""
    host = sign_up(server.url)
    sid = create_space(host, scheduled_start=soon(days=1))["id"]
    assert host.post(f"/api/spaces/{sid}/cancel").json()["state"] == "cancelled"
    live = create_space(host)["id"]
    problem(host.post(f"/api/spaces/{live}/cancel"), 409)
    assert host.get(f"/api/spaces/{live}").json()["state"] == "live"


@pytest.mark.parametrize(
    ("fields", "contains"),
    [
        ({"title": ""}, "empty"),
        ({"title": "x" * 101}, "limit is 100"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "scheduled_start": "2020-01-01T00:00:00Z"}, "past"),
        ({"title": "ok", "scheduled_start": "FUTURE15"}, "14 days"),
        ({"title": "ok", "scheduled_start": "2030-01-01T00:00:00"}, "timezone"),
        ({"title": 42}, "valid string"),
        ({"title": "ok", "allow_guests": "perhaps"}, "allow_guests"),
        ({"title": "ok", "colour": "red"}, "colour"),
        ({}, "title"),
    ],
)
def test_bad_spaces_are_refused_and_nothing_is_created(server: LiveServer, fields, contains):
    """Each invalid Space gets 422 naming the problem; the host's listings do not change."""
    host = sign_up(server.url)
    if fields.get("scheduled_start") == "FUTURE15":
        fields = {**fields, "scheduled_start": soon(days=14, hours=1)}
    before = host.get("/api/spaces?state=upcoming&limit=100").json()
    problem(host.post("/api/spaces", json=fields), 422, contains=contains)
    assert host.get("/api/spaces?state=upcoming&limit=100").json() == before


def test_malformed_json_is_a_400(server: LiveServer):
    """A body that is not JSON says so."""
    host = sign_up(server.url)
    r = host.post(
        "/api/spaces", content=b'{"title": "x",', headers={"Content-Type": "application/json"}
    )
    problem(r, 400, contains="not valid JSON")


def test_wrong_content_type_is_a_415(server: LiveServer):
    """Form posts are not JSON: refused before any route runs."""
    host = sign_up(server.url)
    problem(host.post("/api/spaces", data={"title": "x"}), 415, contains="application/json")


def test_oversized_body_is_a_413(server: LiveServer):
    """Bodies over the limit are refused, whether announced or streamed."""
    host = sign_up(server.url)
    big = b'{"title": "' + b"x" * (server.settings.max_body_bytes + 10) + b'"}'
    problem(
        host.post("/api/spaces", content=big, headers={"Content-Type": "application/json"}),
        413,
        contains="limit",
    )

    def chunks():
        for _ in range(server.settings.max_body_bytes // 1000 + 5):
            yield b" " * 1000

    r = host.post("/api/spaces", content=chunks(), headers={"Content-Type": "application/json"})
    problem(r, 413, contains="limit")
    assert host.get("/api/health").status_code == 200


def test_unknown_space_is_a_404_everywhere(server: LiveServer, anon):
    """Reading, joining or acting on a Space that does not exist: 404 naming it."""
    host = sign_up(server.url)
    for method, path in [
        ("GET", "/api/spaces/nope"),
        ("GET", "/api/spaces/nope/state"),
        ("POST", "/api/spaces/nope/start"),
        ("POST", "/api/spaces/nope/requests"),
    ]:
        problem(host.request(method, path), 404, contains="nope")
    problem(anon.post("/api/spaces/nope/join"), 404, contains="nope")


def test_edit_by_host_only(server: LiveServer):
    """The host edits title and description; a listener cannot."""
    host, other = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    r = host.patch(f"/api/spaces/{sid}", json={"title": "Renamed", "description": "new"})
    assert r.status_code == 200
    assert r.json()["title"] == "Renamed"
    problem(other.patch(f"/api/spaces/{sid}", json={"title": "Mine"}), 403, contains="listener")
    assert other.get(f"/api/spaces/{sid}").json()["title"] == "Renamed"


def test_remind_me_then_notified_on_start(any_server: LiveServer):
    """Subscribers of a scheduled Space get a notification when it goes live."""
    host, fan, other = (sign_up(any_server.url) for _ in range(3))
    sid = create_space(host, scheduled_start=soon(hours=1))["id"]
    assert fan.put(f"/api/spaces/{sid}/reminder").status_code == 204
    assert fan.put(f"/api/spaces/{sid}/reminder").status_code == 204  # idempotent
    assert fan.get(f"/api/spaces/{sid}").json()["viewer"]["reminded"] is True
    assert host.get(f"/api/spaces/{sid}").json()["reminders"] == 1
    host.post(f"/api/spaces/{sid}/start")
    notes = fan.get("/api/me/notifications").json()
    assert [(n["space_id"], n["kind"]) for n in notes] == [(sid, "space_started")]
    assert other.get("/api/me/notifications").json() == []
    problem(fan.put(f"/api/spaces/{sid}/reminder"), 409, contains="upcoming")


def test_unauthenticated_writes_are_401(anon):
    """Creating a Space needs an account."""
    problem(anon.post("/api/spaces", json={"title": "x"}), 401, contains="log in")


def test_openapi_docs_are_served(anon):
    """/docs renders and the schema lists the main routes."""
    assert anon.get("/docs").status_code == 200
    schema = anon.get("/openapi.json").json()
    for path in ("/api/spaces", "/api/spaces/{space_id}/join", "/api/spaces/{space_id}/state"):
        assert path in schema["paths"]
