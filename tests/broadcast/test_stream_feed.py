"""Reading a broadcast as one run of parts (``tribune.broadcast.stream``), and the edge
feed that pushes those parts to every edge (``tribune.service.edge_feed``), against a
real HTTP server that records what it receives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.broadcast.hls import ticks, tone
from tests.broadcast.test_blocking import push
from tribune.broadcast import Broadcast
from tribune.broadcast.stream import backlog_start, following, parts
from tribune.edge.config import PUBLISH_HEADER, publish_key
from tribune.service.edge_feed import EdgeFeed

TICKS_PER_PART = 17  # 16 AAC frames of 1024 = 16,384 samples; ticks of 960


def test_part_arithmetic() -> None:
    assert following((3, 4), 6) == (3, 5)
    assert following((3, 5), 6) == (4, 0)
    assert backlog_start((3, 1), 6, 2) == (3, 0)
    assert backlog_start((3, 0), 6, 2) == (2, 5)
    assert backlog_start((0, 0), 6, 3) == (0, 0)


async def test_parts_give_the_backlog_then_each_new_part_then_end(tmp_path: Path) -> None:
    source = iter(ticks(tone(440, 30)))
    async with Broadcast(tmp_path) as broadcast:
        push(broadcast, source, 10 * TICKS_PER_PART)
        last = broadcast.last_part
        assert last is not None
        reader = parts(broadcast, backlog=2)
        first = await anext(reader)
        second = await anext(reader)
        start = backlog_start(last, 6, 2)
        assert first == broadcast.part_bytes(*start)
        assert second == broadcast.part_bytes(*last)
        waiting = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "the next part does not exist yet"
        push(broadcast, source, TICKS_PER_PART + 1)
        assert await asyncio.wait_for(waiting, 2) == broadcast.part_bytes(*following(last, 6))
        rest = asyncio.ensure_future(_drain(reader))
        await broadcast.close()
    assert await asyncio.wait_for(rest, 5) >= 0  # the run ends with the broadcast


async def _drain(reader: AsyncIterator[bytes]) -> int:
    return len([part async for part in reader])


@dataclass
class Receiver:
    """An HTTP server recording what is published to it, as an edge's publisher would."""

    url: str = ""
    seen: list[tuple[str, str, str, bytes]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.seen.append(
            (
                request.method,
                request.url.path,
                request.headers.get(PUBLISH_HEADER, ""),
                await request.body(),
            )
        )
        return Response(status_code=201 if request.method == "POST" else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = Starlette(
        routes=[Route("/_tribune/publish/{space}", rec.handle, methods=["POST", "DELETE"])]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    yield rec
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def dead_edge() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    return f"http://127.0.0.1:{port}"


async def test_the_feed_pushes_every_part_in_order_and_ends_the_channel(
    tmp_path: Path, receiver: Receiver
) -> None:
    key = publish_key(b"s" * 32)
    dead = dead_edge()
    feed = EdgeFeed([receiver.url, dead], key)
    source = iter(ticks(tone(440, 30)))
    try:
        async with Broadcast(tmp_path) as broadcast:
            feed.follow("sp1", broadcast)
            for _ in range(8):  # parts made one by one, as in a live Space
                push(broadcast, source, TICKS_PER_PART)
                await asyncio.sleep(0.02)
        # closed: the last short part is made too, and the feed sends it before the end
        made = [
            broadcast.part_bytes(m, i)
            for m in range(broadcast.next_msn + 1)
            for i in range(6)
            if broadcast.part_bytes(m, i) is not None
        ]
        await feed.unfollow("sp1")
        posts = [s for s in receiver.seen if s[0] == "POST"]
        # from the part that was newest when it started (none yet: the first) to the last
        assert [s[3] for s in posts] == made[len(made) - len(posts) :]
        assert len(posts) >= len(made) - 1
        assert {s[1] for s in receiver.seen} == {"/_tribune/publish/sp1"}
        assert {s[2] for s in receiver.seen} == {key.hex()}
        assert receiver.seen[-1][0] == "DELETE", "the Space's end closes the edge's channel"
        # the dead edge failed on its own, without holding the live one back
        assert feed.stats[receiver.url].failed == 0
        assert feed.stats[dead].failed >= len(posts)
        assert "ConnectError" in feed.stats[dead].last_error
    finally:
        await feed.close()
