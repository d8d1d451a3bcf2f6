"""Two API workers on one Redis and one database, as `TRIBUNE_REDIS_URL` runs them: what
one worker does, the other sees (counts, events, rate limits), through the real HTTP API."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.api.test_events import event_stream, next_event
from tests.conftest import LiveServer
from tests.helpers import bearer, create_space, join, sign_up

Workers = tuple[LiveServer, LiveServer]


@pytest.fixture
def workers(scaled_server: Callable[..., LiveServer], redis_url: str, tmp_path: Path) -> Workers:
    shared = {
        "data_dir": tmp_path,
        "secret_key": secrets.token_hex(32),
        "redis_url": redis_url,
        "media": False,
    }
    return scaled_server(**shared), scaled_server(**shared)


def test_counts_are_shared_by_workers(workers: Workers) -> None:
    a, b = workers
    host = sign_up(a.url)
    sid = create_space(host)["id"]
    tokens = []
    for server in (a, b, a):
        with httpx.Client(base_url=server.url) as guest:
            tokens.append(join(guest, sid)["listener_token"])
    with httpx.Client(base_url=b.url) as client:  # heartbeats land on the other worker
        for token in tokens:
            beat = client.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token))
            assert beat.status_code == 200, beat.text
    deadline = time.monotonic() + 6
    for server in (a, b):
        with httpx.Client(base_url=server.url) as client:
            while True:
                state = client.get(f"/api/spaces/{sid}/state").json()
                if state["listeners"] == {"concurrent": 3, "total": 3}:
                    break
                assert time.monotonic() < deadline, state["listeners"]
                time.sleep(0.2)


def test_events_reach_a_stream_on_the_other_worker(workers: Workers) -> None:
    """The host follows the Space's events on worker B; a request to speak made on A and
    the host's answer made on A arrive on B's stream."""
    a, b = workers
    host = sign_up(b.url)
    fan = sign_up(a.url)
    sid = create_space(host, title="Two workers")["id"]
    with event_stream(host, sid) as events:
        assert events.get(timeout=5) == ("status", 200)
        assert next_event(events, "snapshot")["title"] == "Two workers"
        assert fan.post(f"/api/spaces/{sid}/requests").status_code == 201
        assert next_event(events, "request.created")["user_id"] == fan.user["id"]
        with httpx.Client(base_url=a.url, cookies=host.cookies) as host_on_a:
            headers = {"X-CSRF-Token": host.csrf}
            end = host_on_a.post(f"/api/spaces/{sid}/end", headers=headers)
            assert end.status_code == 200, end.text
        assert next_event(events, "space.state") == {"old": "live", "new": "ended"}
        assert events.get(timeout=5) is None


async def test_rate_limits_hold_across_workers(workers: Workers) -> None:
    """Reactions are limited per person, not per worker: 20 sent at once, half to each
    worker, get one bucket's worth (its burst plus what refilled meanwhile), not two."""
    a, b = workers
    host = sign_up(a.url)
    sid = create_space(host)["id"]
    with httpx.Client(base_url=a.url) as guest:
        token = join(guest, sid)["listener_token"]
    url = f"/api/spaces/{sid}/reactions"
    async with (
        httpx.AsyncClient(base_url=a.url, headers=bearer(token)) as on_a,
        httpx.AsyncClient(base_url=b.url, headers=bearer(token)) as on_b,
    ):
        await on_a.get("/api/health")  # connections open before the clock starts
        await on_b.get("/api/health")
        started = time.monotonic()
        answers = await asyncio.gather(
            *((on_a if n % 2 else on_b).post(url, json={"reaction": "clap"}) for n in range(20))
        )
        elapsed = time.monotonic() - started
    statuses = [r.status_code for r in answers]
    rate = a.settings.reaction_rate  # the burst equals the rate
    one_bucket = rate + rate * elapsed
    assert statuses.count(204) <= one_bucket + 1, (statuses, elapsed)
    assert 2 * rate > one_bucket + 1, f"too slow ({elapsed:.2f} s) to tell one bucket from two"
    assert statuses.count(429) >= 20 - (one_bucket + 1), statuses
