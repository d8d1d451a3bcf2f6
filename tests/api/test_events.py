"""Room events over SSE for hosts and speakers."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import LiveServer
from tests.helpers import Person, create_space, problem, sign_up


@contextmanager
def event_stream(person: Person, sid: str) -> Iterator[queue.Queue]:
    """Read the stream in a thread; events (type, data) arrive on a queue; None = closed."""
    events: queue.Queue = queue.Queue()
    client = httpx.Client(base_url=str(person.base_url), cookies=person.cookies, timeout=30)
    ready = threading.Event()

    def read() -> None:
        try:
            with client.stream("GET", f"/api/spaces/{sid}/events") as r:
                events.put(("status", r.status_code))
                ready.set()
                kind = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.put((kind, json.loads(line[6:])))
        except httpx.HTTPError:
            pass
        finally:
            ready.set()
            events.put(None)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield events
    finally:
        # Each test ends its stream server-side (demotion, end of Space), which is part of
        # what it checks; the reader thread then finishes by itself.
        thread.join(10)
        client.close()


def next_event(events: queue.Queue, kind: str, timeout: float = 5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        item = events.get(timeout=max(0.01, deadline - time.monotonic()))
        assert item is not None, f"stream closed before {kind}"
        if item[0] == kind:
            return item[1]


def test_host_gets_snapshot_then_live_events(server: LiveServer):
    """The host's stream opens with the room state, then request and stage events follow."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host, title="Evented")["id"]
    with event_stream(host, sid) as events:
        assert events.get(timeout=5) == ("status", 200)
        assert next_event(events, "snapshot")["title"] == "Evented"
        fan.post(f"/api/spaces/{sid}/requests")
        assert next_event(events, "request.created")["user_id"] == fan.user["id"]
        host.post(f"/api/spaces/{sid}/requests/{fan.user['id']}/accept")
        joined = next_event(events, "stage.joined")
        assert (joined["user_id"], joined["role"]) == (fan.user["id"], "speaker")
        host.post(f"/api/spaces/{sid}/members/{fan.user['id']}/mute")
        assert next_event(events, "stage.muted")["host_muted"] is True
        host.post(f"/api/spaces/{sid}/end")
        assert next_event(events, "space.state") == {"old": "live", "new": "ended"}
        assert events.get(timeout=5) is None, "the stream should close when the Space ends"


def test_demoted_speaker_stream_ends(server: LiveServer):
    """A speaker's stream delivers their own demotion, then closes."""
    host, sp = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    sp.post(f"/api/spaces/{sid}/requests")
    host.post(f"/api/spaces/{sid}/requests/{sp.user['id']}/accept")
    with event_stream(sp, sid) as events:
        next_event(events, "snapshot")
        host.post(f"/api/spaces/{sid}/members/{sp.user['id']}/demote")
        assert next_event(events, "stage.left")["reason"] == "demoted"
        assert events.get(timeout=5) is None


def test_listeners_cannot_subscribe(server: LiveServer, anon):
    """Listeners poll the state document; the push channel is for the stage."""
    host, fan = sign_up(server.url), sign_up(server.url)
    sid = create_space(host)["id"]
    problem(fan.get(f"/api/spaces/{sid}/events"), 403, contains="listener")
    problem(anon.get(f"/api/spaces/{sid}/events"), 401)
