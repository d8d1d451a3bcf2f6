"""The edge keeps a crowd from delaying everything else.

* A Space's joins in flight to the origins are capped per edge (``--space-joins``): more
  get a 503 ``join-busy`` with a short Retry-After at once, while another Space's joins
  still reach the origins.
* Writes other than the crowd's (sign-in, stage, moderation, WHIP) go to the control
  origins (``--control-origin``), reads and the crowd's requests to the others.

The crowd's origin here is a socket that reads requests and never answers (an origin whose
queue is full of a crowd's joins); the control origin is the real Tribune of conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.edge.conftest import UNLIMITED, Origin, edge_before
from tests.helpers import problem, sign_up
from tribune.edge.config import JOIN_BUSY_RETRY_S

#: a bearer token sends a join straight on (the origin checks accounts, not the edge)
CREDENTIALS = {"Authorization": "Bearer tbt_not-checked-at-the-edge"}


class StuckOrigin:
    """Accepts connections and reads requests; answers nothing until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    with self._lock:
                        self.lines.append(head.split(b"\r\n", 1)[0].decode())

    def seen(self, contains: str) -> int:
        with self._lock:
            return sum(contains in line for line in self.lines)

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


@dataclasses.dataclass
class Lanes:
    url: str
    stuck: StuckOrigin


@pytest.fixture
def lanes(origin: Origin, nginx: str) -> Iterator[Lanes]:
    """An edge whose crowd origin is stuck and whose control origin is the real one."""
    stuck = StuckOrigin()
    crowd = dataclasses.replace(origin, url=f"http://127.0.0.1:{stuck.port}", port=stuck.port)
    flags = (*UNLIMITED, "--space-joins", "3", "--control-origin", origin.url)
    try:
        with edge_before(crowd, nginx, *flags) as url:
            yield Lanes(url, stuck)
    finally:
        stuck.close()


def _wait_for(what: str, check: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _join(url: str, space: str, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{url}/api/spaces/{space}/join", headers=CREDENTIALS, timeout=timeout)


def test_a_spaces_joins_in_flight_are_capped_and_other_spaces_still_pass(lanes: Lanes) -> None:
    with ThreadPoolExecutor(8) as pool:
        held: list[Future[httpx.Response]] = [
            pool.submit(_join, lanes.url, "crowded") for _ in range(3)
        ]
        _wait_for("3 joins at the origin", lambda: lanes.stuck.seen("/crowded/join") == 3)

        # the fourth is turned away at once, and never reaches the origin
        began = time.monotonic()
        r = _join(lanes.url, "crowded", timeout=5)
        assert time.monotonic() - began < 2
        body = problem(r, 503, contains="join again")
        assert body["type"] == "urn:tribune:problem:join-busy"
        assert r.headers["Retry-After"] == str(JOIN_BUSY_RETRY_S)
        assert r.headers["Cache-Control"] == "no-store"
        assert lanes.stuck.seen("/crowded/join") == 3

        # another Space's joins are not held back by that crowd
        other = pool.submit(_join, lanes.url, "quiet")
        _wait_for("the other Space's join at the origin", lambda: lanes.stuck.seen("/quiet/join"))
        assert not other.done()

        # the origin gives up on them (502 from nginx: the join path's outage answer) ...
        lanes.stuck.close()
        for future in [*held, other]:
            answer = future.result(20)
            assert answer.status_code == 503
            assert answer.json()["type"] == "urn:tribune:problem:join-unavailable"

    # ... and the Space's joins in flight were counted down: none is busy any more
    r = _join(lanes.url, "crowded", timeout=20)
    assert r.json()["type"] == "urn:tribune:problem:join-unavailable"


def test_writes_go_to_the_control_origins_reads_to_the_crowds(lanes: Lanes, origin: Origin) -> None:
    """With the crowd's origins stuck, a host still signs in and runs a Space."""
    since = time.monotonic()
    host = sign_up(lanes.url)  # POST /api/accounts (closed after the test, helpers.py)
    r = host.post("/api/spaces", json={"title": "Writes keep flowing"})
    assert r.status_code == 201, r.text
    space = r.json()["id"]
    r = host.post(f"/api/spaces/{space}/end")
    assert r.status_code == 200, r.text
    assert {s.path for s in origin.requests(since=since)} >= {
        "/api/accounts", "/api/spaces", f"/api/spaces/{space}/end",
    }  # fmt: skip
    assert lanes.stuck.seen("POST") == 0

    # a read goes to the crowd's origins (stuck: it times out there, not at the control)
    with pytest.raises(httpx.ReadTimeout):
        host.get(f"/api/spaces/{space}", timeout=1.0)
    _wait_for(
        "the read at the crowd's origin", lambda: lanes.stuck.seen(f"GET /api/spaces/{space}")
    )
    assert f"/api/spaces/{space}" not in {
        s.path for s in origin.requests(since=since) if s.method == "GET"
    }
