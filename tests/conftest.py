"""Real servers on loopback: Tribune under uvicorn in a thread, PostgreSQL in a process."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.helpers import OPEN_CLIENTS
from tests.postgres import running_postgres
from tribune.api.app import create_app
from tribune.config import Settings


@dataclass
class LiveServer:
    url: str
    settings: Settings
    secret: bytes
    #: stops it before the session ends (e.g. before the Redis it uses goes away)
    stop: Callable[[], None] = lambda: None

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Start a real uvicorn server in a thread with the given settings; stop all at the end."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: object) -> LiveServer:
        secret = secrets.token_hex(32)
        fields: dict[str, object] = {
            "data_dir": tmp_path_factory.mktemp("data"),
            "secret_key": secret,
            **overrides,
        }
        settings = Settings(**fields)  # type: ignore[arg-type]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("tribune test server did not start")
            time.sleep(0.02)
        running.append((server, thread))

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        return LiveServer(f"http://127.0.0.1:{port}", settings, secret.encode(), stop)

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """Tribune's control plane on the embedded default (SQLite file, in-process state).

    Media is off here, as in an API-only worker: the many Spaces these tests leave live
    would otherwise each mix and encode audio for the rest of the session.
    """
    return start_server(media=False)


@pytest.fixture(scope="session")
def media_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """The embedded default with live audio; tests using it end the Spaces they start."""
    return start_server()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server started for this test session."""
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def pg_server(start_server: Callable[..., LiveServer], postgres_url: str) -> LiveServer:
    """Tribune on PostgreSQL."""
    return start_server(database_url=postgres_url, media=False)


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> LiveServer:
    """The same test against both storage backends."""
    name = "server" if request.param == "sqlite" else "pg_server"
    live: LiveServer = request.getfixturevalue(name)
    return live


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the clients a test opened (wider-scoped fixtures' clients stay open)."""
    mark = len(OPEN_CLIENTS)
    yield
    while len(OPEN_CLIENTS) > mark:
        OPEN_CLIENTS.pop().close()


@pytest.fixture(scope="session", autouse=True)
def _close_all_clients() -> Iterator[None]:
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()
