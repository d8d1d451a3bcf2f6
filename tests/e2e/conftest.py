"""Live Spaces on the media-enabled server, ended after each test so their audio stops."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import Person, create_space, sign_up


@pytest.fixture
def live_space(media_server: LiveServer) -> Iterator[Callable[..., tuple[Person, str]]]:
    started: list[tuple[Person, str]] = []

    def make(**fields: object) -> tuple[Person, str]:
        host = sign_up(media_server.url)
        sid = create_space(host, **fields)["id"]
        started.append((host, sid))
        return host, sid

    yield make
    for host, sid in started:
        host.post(f"/api/spaces/{sid}/end")  # 409 if the test ended it already: fine


@pytest.fixture
def media_anon(media_server: LiveServer) -> Iterator[httpx.Client]:
    with media_server.client() as client:
        yield client
