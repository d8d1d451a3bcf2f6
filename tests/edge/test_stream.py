"""The stream through a real nginx edge: /listen/{space}/{token} is one long response per
listener into which the edge (nchan) writes every part published to it.

The tests publish to the edge themselves, as the media process does (``POST
/_tribune/publish/{space}`` with the publish key), with made-up parts: the edge passes
bytes through and never looks inside them. Listener tokens are the origin's (signed with its
secret); the origin is running and counts every request, and must see none of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.edge.conftest import UNLIMITED, Edge, Origin, Space
from tests.edge.test_edge import _forged, _tampered, problem
from tribune.admission.tokens import ListenerTokens, derive_key
from tribune.edge.config import STREAM_BACKLOG, publish_key

#: how long any single wait in these tests may take
WAIT_S = 10.0
#: nchan's answers to a publish: 201 delivered to listeners here, 202 stored for later. A
#: listener that has only just connected may not be counted yet (workers tell each other),
#: but gets the part all the same: where no byte has reached it yet, either will do.
STORED = (201, 202)


def new_space() -> str:
    """A Space id of its own for each test: an nchan channel nobody else publishes to."""
    return f"st_{secrets.token_hex(6)}"


def token_for(origin: Origin, space_id: str, *, ttl: int = 600, now: float | None = None) -> str:
    """A listener token as the origin issues it on join (same secret, same code)."""
    token, _ = ListenerTokens(origin.secret, ttl).issue(space_id, "g_stream_test", now=now)
    return token


def part(n: int, size: int = 2_500) -> bytes:
    """A made-up part: distinct bytes, with newlines and NULs that no separator may touch."""
    head = f"part {n} ".encode()
    body = bytes((n * 7 + i) % 256 for i in range(size - len(head) - 2))
    return head + body + b"\n\x00"


@dataclass
class Publisher:
    """The media process's side: POST a part, DELETE the channel."""

    client: httpx.Client
    key: str

    def post(self, space_id: str, data: bytes, key: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if key != "":
            headers["X-Tribune-Publish-Key"] = self.key if key is None else key
        return self.client.post(f"/_tribune/publish/{space_id}", content=data, headers=headers)

    def delete(self, space_id: str) -> httpx.Response:
        headers = {"X-Tribune-Publish-Key": self.key}
        return self.client.delete(f"/_tribune/publish/{space_id}", headers=headers)


@pytest.fixture
def publisher(origin: Origin, edge: Edge) -> Iterator[Publisher]:
    with edge.client() as client:
        yield Publisher(client, publish_key(origin.secret).hex())


@dataclass
class Listener:
    """One open GET /listen/... on a raw connection; the body is read as it comes."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    body: bytearray = field(default_factory=bytearray)

    async def read(self, size: int) -> bytes:
        """The next ``size`` bytes of the body (fails on EOF or after WAIT_S)."""
        async with asyncio.timeout(WAIT_S):
            data = await self.reader.readexactly(size)
        self.body += data
        return data

    async def nothing_more(self, within: float = 0.3) -> None:
        """Nothing else arrives for ``within`` seconds (and the stream is still open)."""
        try:
            async with asyncio.timeout(within):
                data = await self.reader.read(1)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected bytes or end of stream: {data!r}")

    async def until_end(self) -> bytes:
        """The rest of the body, up to the end of the response (fails after WAIT_S)."""
        async with asyncio.timeout(WAIT_S):
            rest = await self.reader.read()
        self.body += rest
        return rest

    def close(self) -> None:
        self.writer.close()


async def listen(port: int, path: str, headers: dict[str, str] | None = None) -> Listener:
    """GET ``path``; returns once the response's head is in (the body is left to read)."""
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
    listener = Listener(int(lines[0].split()[1]), parsed, reader, writer)
    if "content-length" in parsed:
        await listener.read(int(parsed["content-length"]))
    return listener


@contextlib.asynccontextmanager
async def closing(listeners: list[Listener]) -> AsyncIterator[list[Listener]]:
    try:
        yield listeners
    finally:
        for listener in listeners:
            listener.close()


def crashes(edge: Edge) -> list[str]:
    """Worker processes that died (nchan asserts abort the worker, and every stream on it)."""
    return [line for line in edge.errors().splitlines() if "exited on signal" in line]


def assert_stream_head(listener: Listener) -> None:
    assert listener.status == 200, (listener.status, listener.headers, bytes(listener.body))
    assert listener.headers["content-type"] == "audio/mp4"
    assert listener.headers["cache-control"] == "no-store"


# -- listening ---------------------------------------------------------------------------


async def test_a_listener_gets_the_newest_parts_then_every_new_one_until_the_space_ends(
    origin: Origin, edge: Edge, space: Space, publisher: Publisher
):
    """With a token from joining: the response starts with the last two parts the edge has,
    then each new one as it is published, byte for byte, and ends when the channel is
    deleted. The origin sees no /listen/ request."""
    token = edge.join(space.id)["listener_token"]
    mark = time.monotonic()
    parts = [part(n) for n in range(6)]
    for data in parts[:4]:
        # nobody listens here yet: nchan stores it (202)
        assert publisher.post(space.id, data).status_code == 202
    async with closing([await listen(edge.port, f"/listen/{space.id}/{token}")]) as (one,):
        assert_stream_head(one)
        backlog = parts[4 - STREAM_BACKLOG : 4]
        assert await one.read(len(b"".join(backlog))) == b"".join(backlog)
        await one.nothing_more()
        for data in parts[4:]:
            # delivered to a listener: 201
            assert publisher.post(space.id, data).status_code == 201
            assert await one.read(len(data)) == data
        await one.nothing_more()
        r = publisher.delete(space.id)
        assert r.status_code == 200, r.text
        assert await one.until_end() == b""
        assert bytes(one.body) == b"".join(parts[2:])
    assert origin.requests("/listen/", mark) == []
    assert crashes(edge) == []


async def test_many_listeners_all_get_every_part(origin: Origin, edge: Edge, publisher: Publisher):
    """200 listeners of one Space on one edge (two workers): every one gets the backlog and
    every part published after it, byte for byte, and every response ends with the Space."""
    count, parts_after = 200, 10
    sid = new_space()
    token = token_for(origin, sid)
    backlog = [part(100 + n, 1_800 + n) for n in range(STREAM_BACKLOG)]
    for data in backlog:
        assert publisher.post(sid, data).status_code == 202
    listeners = await asyncio.gather(
        *(listen(edge.port, f"/listen/{sid}/{token}") for _ in range(count))
    )
    async with closing(list(listeners)):
        for listener in listeners:
            assert_stream_head(listener)
        expected = b"".join(backlog)
        got = await asyncio.gather(*(one.read(len(expected)) for one in listeners))
        assert all(data == expected for data in got)
        later = [part(200 + n, 2_400 + 13 * n) for n in range(parts_after)]
        started = time.monotonic()
        for data in later:
            assert publisher.post(sid, data).status_code == 201
            await asyncio.sleep(0.1)  # 3.4 times the real rate (a part every 0.34 s)
        expected = b"".join(later)
        got = await asyncio.gather(*(one.read(len(expected)) for one in listeners))
        assert all(data == expected for data in got)
        elapsed = time.monotonic() - started
        assert publisher.delete(sid).status_code == 200
        ends = await asyncio.gather(*(one.until_end() for one in listeners))
        assert ends == [b""] * count
    assert crashes(edge) == []
    print(f"stream: {count} listeners x {parts_after} parts in {elapsed:.2f} s")


async def test_delete_ends_every_open_stream_and_a_new_listener_waits(
    origin: Origin, edge: Edge, publisher: Publisher
):
    """The Space ends (DELETE): open responses end. A listener arriving afterwards (its token
    still valid) gets a 200 that waits for parts, and no worker crashes on the empty channel
    (nchan 1.3.6 would with first_message -2)."""
    sid = new_space()
    token = token_for(origin, sid)
    assert publisher.post(sid, part(1)).status_code == 202
    listeners = [await listen(edge.port, f"/listen/{sid}/{token}") for _ in range(5)]
    async with closing(listeners):
        for listener in listeners:
            assert_stream_head(listener)
            assert await listener.read(len(part(1))) == part(1)
        assert publisher.delete(sid).status_code == 200
        assert await asyncio.gather(*(one.until_end() for one in listeners)) == [b""] * 5
    # After the end: the channel is gone, and listeners who come late wait (no crash).
    late = [await listen(edge.port, f"/listen/{sid}/{token}") for _ in range(3)]
    async with closing(late):
        for listener in late:
            assert_stream_head(listener)
            await listener.nothing_more(0.2)
        # the Space comes back (its media restarted): they hear it
        assert publisher.post(sid, part(2)).status_code in STORED
        for listener in late:
            assert await listener.read(len(part(2))) == part(2)
        assert publisher.delete(sid).status_code == 200
    assert crashes(edge) == []


async def test_a_listener_cannot_choose_where_its_stream_starts(
    origin: Origin, edge: Edge, publisher: Publisher
):
    """nchan reads a message id from Last-Event-ID, ?last_event_id, If-Modified-Since and
    If-None-Match, and version 1.3.6 aborts its worker on some of them (and with it every
    stream the worker holds). The first two are ignored, the other two refused."""
    sid = new_space()
    token = token_for(origin, sid)
    path = f"/listen/{sid}/{token}"
    msgid = f"{int(time.time())}:0"
    mark = time.monotonic()
    with edge.client() as client:
        for header in ("If-None-Match", "If-Modified-Since"):
            value = msgid if header == "If-None-Match" else "Sun, 22 Nov 2026 04:00:00 GMT"
            problem(client.get(path, headers={header: value}), 400, header)
    # On an empty channel, then on one with parts: each starts where the edge says.
    waiting = [
        await listen(edge.port, path),
        await listen(edge.port, path, {"Last-Event-ID": msgid}),
        await listen(edge.port, f"{path}?last_event_id={msgid}"),
    ]
    async with closing(waiting):
        for listener in waiting:
            assert_stream_head(listener)
        assert publisher.post(sid, part(1)).status_code in STORED
        assert publisher.post(sid, part(2)).status_code in STORED
        assert publisher.post(sid, part(3)).status_code in STORED
        late = [
            await listen(edge.port, path, {"Last-Event-ID": msgid}),
            await listen(edge.port, f"{path}?last_event_id={msgid}"),
        ]
        async with closing(late):
            wanted = part(1) + part(2) + part(3)
            for listener in waiting:
                assert await listener.read(len(wanted)) == wanted
            for listener in late:
                assert_stream_head(listener)
                assert await listener.read(len(part(2) + part(3))) == part(2) + part(3)
                await listener.nothing_more(0.1)
    assert publisher.delete(sid).status_code == 200
    assert crashes(edge) == []
    assert origin.requests("/listen/", mark) == []


# -- what the edge refuses ------------------------------------------------------------------


async def test_bad_tokens_die_at_the_edge(
    origin: Origin, edge: Edge, space: Space, publisher: Publisher
):
    """Forged, tampered, another Space's and malformed tokens: 403; expired: 410; as problem
    JSON, none of them reaching the origin or getting a byte of the stream, and no token in
    the access log."""
    sid = new_space()
    token = token_for(origin, sid)
    expired = token_for(origin, sid, ttl=60, now=time.time() - 120)
    cases = [
        (_forged(token), 403, "signature does not match"),
        (_tampered(token), 403, "signature does not match"),
        (token_for(origin, space.id), 403, "for another Space"),
        ("tbl_garbage", 403, "malformed"),
        ("not-a-token", 403, "malformed"),
        (expired, 410, "expired"),
    ]
    assert publisher.post(sid, part(1)).status_code == 202
    mark = time.monotonic()
    with edge.client() as client:
        for bad, status, detail in cases:
            r = client.get(f"/listen/{sid}/{bad}")
            problem(r, status, detail)
            assert r.headers["cache-control"] == "no-store"
            assert part(1) not in r.content
        problem(client.get(f"/listen/{sid}/{token}/more"), 404, "no such stream")
        problem(client.get(f"/listen/{'x' * 65}/{token}"), 404, "no such stream")
        problem(client.get(f"/listen/bad.space/{token}"), 404, "no such stream")
        for method in ("POST", "HEAD", "DELETE"):
            r = client.request(method, f"/listen/{sid}/{token}")
            assert r.status_code == 405, (method, r.status_code)
            assert r.headers["allow"] == "GET"
    assert origin.requests("/listen/", mark) == []
    assert origin.requests("/_tribune/", mark) == []
    listens = [line for line in edge.log() if "/listen/" in line]
    assert listens
    assert not [line for line in listens if "tbl_" in line]
    assert publisher.delete(sid).status_code == 200


async def test_publishing_needs_the_publish_key(origin: Origin, edge: Edge, publisher: Publisher):
    """Without the key, with a wrong one (the listener-token key, the secret itself, the
    key in upper case) or with a method the publisher does not take: a problem, nothing
    published, nothing delivered; the origin never sees it."""
    sid = new_space()
    token = token_for(origin, sid)
    mark = time.monotonic()
    async with closing([await listen(edge.port, f"/listen/{sid}/{token}")]) as (one,):
        assert_stream_head(one)
        wrong = [
            "",
            "00" * 32,
            derive_key(origin.secret, "listener-token").hex(),
            origin.secret.hex(),
            publisher.key.upper(),
            publisher.key[:-1],
        ]
        for key in wrong:
            problem(publisher.post(sid, b"forged audio", key=key), 403, "publish key")
        problem(publisher.client.delete(f"/_tribune/publish/{sid}"), 403, "publish key")
        r = publisher.client.put(
            f"/_tribune/publish/{sid}",
            content=b"forged audio",
            headers={"X-Tribune-Publish-Key": publisher.key},
        )
        problem(r, 405, "POST")
        assert r.headers["allow"] == "GET, POST, DELETE"
        await one.nothing_more()
        # The right key: this, and only this, is what the listener gets.
        assert publisher.post(sid, part(7)).status_code in STORED
        assert await one.read(len(part(7))) == part(7)
        await one.nothing_more(0.1)
        assert b"forged" not in one.body
        assert publisher.delete(sid).status_code == 200
        assert await one.until_end() == b""
    with edge.client() as client:
        problem(client.get("/_tribune/anything"), 404, "belongs to the edge")
        problem(client.post("/_tribune/publish/bad.space", content=b"x"), 404, "edge")
    assert origin.requests("/_tribune/", mark) == []
    assert origin.requests("/listen/", mark) == []


async def test_streams_per_address_are_limited(origin: Origin, start_edge: Callable[..., Edge]):
    """--stream-conns 3: three streams open from one address, the fourth gets 429 (problem
    JSON, Retry-After), and a slot is free again once a stream ends."""
    edge = start_edge("--stream-conns", "3", "--token-streams", "100")
    sid = new_space()
    path = f"/listen/{sid}/{token_for(origin, sid)}"
    first = [await listen(edge.port, path) for _ in range(3)]
    async with closing(first):
        for listener in first:
            assert_stream_head(listener)
        refused = await listen(edge.port, path)
        refused.close()
        assert refused.status == 429, refused.headers
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert b"too many requests" in refused.body
        first[0].close()
        # nginx sees the connection close and ends that stream: a slot is free again
        deadline = time.monotonic() + WAIT_S
        while (again := await listen(edge.port, path)).status == 429:
            again.close()
            assert time.monotonic() < deadline, "the closed stream still counts"
            await asyncio.sleep(0.05)
        again.close()
        assert_stream_head(again)
    # Other paths are not counted against it.
    with edge.client() as client:
        assert client.get("/edge-health").status_code == 200


def test_without_the_stream_nchan_is_not_needed(
    origin: Origin, start_edge: Callable[..., Edge], space: Space
):
    """--no-stream: no nchan (the module path given does not even exist), /listen/ and the
    publisher are answered 404 by the edge, and listening over HLS works as before."""
    edge = start_edge(*UNLIMITED, "--no-stream", "--nchan-module", "/nonexistent/nchan.so")
    text = edge.conf.read_text()
    assert "nchan" not in text
    assert publish_key(origin.secret).hex() not in text
    token = edge.join(space.id)["listener_token"]
    mark = time.monotonic()
    with edge.client() as client:
        problem(client.get(f"/listen/{space.id}/{token}"), 404, "/hls/")
        key = {"X-Tribune-Publish-Key": publish_key(origin.secret).hex()}
        r = client.post(f"/_tribune/publish/{space.id}", content=b"x", headers=key)
        problem(r, 404, "edge")
        assert client.get(f"/hls/{space.id}/{token}/live.m3u8").status_code == 200
    assert origin.requests("/listen/", mark) == []
    assert origin.requests("/_tribune/", mark) == []
