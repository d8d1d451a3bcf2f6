"""Two API workers on one Redis (and one database): a listener counted by either is
counted by both, through the real join and heartbeat endpoints."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import bearer, create_space, join, sign_up
from tests.redis_server import running_redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


def test_counts_are_shared_by_workers(
    start_server: Callable[..., LiveServer], redis_url: str, tmp_path: Path
) -> None:
    shared = {
        "data_dir": tmp_path,
        "secret_key": secrets.token_hex(32),
        "redis_url": redis_url,
        "media": False,
    }
    a, b = start_server(**shared), start_server(**shared)
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
