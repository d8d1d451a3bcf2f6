"""A real redis-server for the scaled backends' tests, one per module, and Tribune
servers on it that stop at the end of each test (before their Redis does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import LiveServer
from tests.redis_server import running_redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


@pytest.fixture
def scaled_server(
    start_server: Callable[..., LiveServer],
) -> Iterator[Callable[..., LiveServer]]:
    """``scaled_server(**settings)``: like ``start_server``, stopped after the test."""
    started: list[LiveServer] = []

    def start(**settings: object) -> LiveServer:
        started.append(start_server(**settings))
        return started[-1]

    yield start
    for server in reversed(started):
        server.stop()
