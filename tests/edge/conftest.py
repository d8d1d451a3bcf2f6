"""Real nginx edges in front of a real Tribune origin that counts every request it gets.

The origin is the app itself (media on) under uvicorn in a thread, wrapped in an ASGI
counter: the app's code is untouched, and "the origin saw N requests for this" is read
from what actually reached it. Each edge is Debian's nginx with njs, configured by
``tribune edge-config`` and run in the foreground on a free loopback port with its own
temporary directory; as root its workers run as ``nobody``, as in production. Edges serve
the stream (/listen/, nchan) unless told ``--no-stream``; the tests feed it themselves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.helpers import Person, create_space, join, sign_up
from tests.postgres import free_port
from tribune.api.app import create_app
from tribune.cli import main as tribune_main
from tribune.config import Settings

ROOT = Path(__file__).resolve().parents[2]
#: switches attack mode at run time (PUT /api/operator/attack-mode), see test_attack.py
OPERATOR_KEY = "edge-tests-operator-key"
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
DEBS = ("nginx-light", "libnginx-mod-http-js", "libnginx-mod-nchan")


@pytest.fixture(scope="session", autouse=True)
def nginx() -> str:
    """nginx with its njs and nchan modules (Debian packages), installed if missing."""
    if not (shutil.which("nginx") and NJS_MODULE.exists() and NCHAN_MODULE.exists()):
        script = ROOT / "scripts" / "system-deps.sh"
        subprocess.run(["bash", str(script), *DEBS], check=True)
    found = shutil.which("nginx")
    assert found, "nginx could not be installed"
    assert NJS_MODULE.exists(), "njs could not be installed"
    assert NCHAN_MODULE.exists(), "nchan could not be installed"
    return found


# -- the origin ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    query: str


@dataclass
class Counter:
    """Pure-ASGI wrapper recording every HTTP request that reaches the app."""

    app: Any
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(
                Seen(
                    time.monotonic(),
                    scope["method"],
                    scope["path"],
                    scope["query_string"].decode(),
                )
            )
        await self.app(scope, receive, send)


@dataclass
class Origin:
    url: str
    port: int
    secret: bytes
    settings: Settings
    counter: Counter

    def requests(self, path_contains: str = "", since: float = 0.0) -> list[Seen]:
        return [s for s in list(self.counter.seen) if path_contains in s.path and s.at >= since]


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """Tribune with live audio, every request it receives counted."""
    secret = secrets.token_hex(32)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("origin"),
        secret_key=secret,  # type: ignore[arg-type]
        operator_key=OPERATOR_KEY,  # type: ignore[arg-type]
    )
    counter = Counter(create_app(settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(counter, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the origin did not start")
        time.sleep(0.02)
    yield Origin(f"http://127.0.0.1:{port}", port, secret.encode(), settings, counter)
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Space:
    id: str
    host: Person


@pytest.fixture(scope="session")
def space(origin: Origin) -> Iterator[Space]:
    """A live Space (no speaker publishing: its program is silence, but parts are made)."""
    host = sign_up(origin.url)
    live = Space(create_space(host, title="Through the edge")["id"], host)
    yield live
    host.post(f"/api/spaces/{live.id}/end")
    host.close()


# -- edges -----------------------------------------------------------------------------


@dataclass
class Edge:
    url: str
    port: int
    directory: Path
    conf: Path
    script: Path
    access_log: Path
    error_log: Path
    process: subprocess.Popen[bytes]
    #: where njs keeps burned proofs of work and admitted tickets (--marks-dir)
    marks: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, **kwargs)

    def join(self, space_id: str) -> dict[str, Any]:
        """Join as a guest through the edge (which passes it to an origin)."""
        with self.client() as c:
            return join(c, space_id)

    def log(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def errors(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def cpu_seconds(self) -> float:
        """CPU time the edge's worker processes have used so far."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        ticks = 0
        for pid in children:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


def write_config(origin: Origin, directory: Path, port: int, *flags: str) -> int:
    """``tribune edge-config`` as an operator runs it, with the origin's secret in the env."""
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith("TRIBUNE_")]:
            env.delenv(name)
        env.setenv("TRIBUNE_SECRET_KEY", origin.secret.decode())
        return tribune_main(
            [
                "edge-config",
                "--out", str(directory / "nginx.conf"),
                "--origin", origin.url,
                "--listen", f"127.0.0.1:{port}",
                "--cache-dir", str(directory / "cache"),
                "--pid", str(directory / "nginx.pid"),
                "--access-log", str(directory / "access.log"),
                "--error-log", str(directory / "error.log"),
                "--workers", "2",
                "--worker-connections", "4096",
                "--marks-dir", str(directory),  # not /run: nothing left behind
                *flags,
            ]
        )  # fmt: skip


def _edge_directory() -> Path:
    # Not under pytest's tmp_path: that is private to root, and the workers run as nobody.
    directory = Path(tempfile.mkdtemp(prefix="tribune-edge-"))
    directory.chmod(0o755)
    (directory / "cache").mkdir()
    return directory


def _marks_directory() -> Path:
    """In memory, as in production (/run): a file is made for every join that passes with a
    proof of work or a ticket, and this machine's disk takes ~0.5 ms to make one."""
    shm = Path("/dev/shm")
    directory = Path(
        tempfile.mkdtemp(prefix="tribune-edge-marks-", dir=shm if shm.is_dir() else None)
    )
    directory.chmod(0o755)
    return directory


@contextlib.contextmanager
def edge_before(origin: Origin, nginx: str, *flags: str) -> Iterator[str]:
    """An edge of its own in front of ``origin`` (whatever listens at its URL: a dead port,
    a socket that never answers) for the length of the block; yields the edge's URL."""
    directory = _edge_directory()
    port = free_port()
    assert write_config(origin, directory, port, *flags) == 0
    process = subprocess.Popen(
        [nginx, "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{url}/edge-health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the edge did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def start_edge(origin: Origin, nginx: str) -> Iterator[Callable[..., Edge]]:
    """Start an nginx edge configured with the given extra ``tribune edge-config`` flags."""
    running: list[Edge] = []

    def start(*flags: str) -> Edge:
        directory = _edge_directory()
        marks = _marks_directory()
        port = free_port()
        assert write_config(origin, directory, port, "--marks-dir", str(marks), *flags) == 0
        conf = directory / "nginx.conf"
        process = subprocess.Popen(
            [nginx, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        edge = Edge(
            f"http://127.0.0.1:{port}",
            port,
            directory,
            conf,
            directory / "tribune-edge.js",
            directory / "access.log",
            directory / "error.log",
            process,
            marks,
        )
        running.append(edge)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"nginx did not start: {err}{edge.errors()}")
            time.sleep(0.02)
        return edge

    yield start
    for edge in running:
        if edge.process.poll() is None:
            edge.process.send_signal(signal.SIGTERM)
    for edge in running:
        try:
            edge.process.wait(10)
        except subprocess.TimeoutExpired:
            edge.process.kill()
            edge.process.wait()
        if edge.process.stderr:
            edge.process.stderr.close()
        shutil.rmtree(edge.directory, ignore_errors=True)
        shutil.rmtree(edge.marks, ignore_errors=True)


#: no per-address (or per-token) limit in the way: every test client is 127.0.0.1
UNLIMITED = (
    *("--rate", "100000", "--burst", "100000"),
    *("--api-rate", "100000", "--api-burst", "100000"),
    *("--join-rate", "100000", "--join-burst", "100000"),
    *("--token-rate", "100000", "--token-burst", "100000"),
    *("--stream-conns", "65535", "--token-streams", "65535"),
)


@pytest.fixture(scope="session")
def edge(start_edge: Callable[..., Edge]) -> Edge:
    """The edge as generated, but with rate limits out of the way."""
    return start_edge(*UNLIMITED)
