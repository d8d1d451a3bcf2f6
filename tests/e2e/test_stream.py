"""The live audio as one HTTP stream (api.routes.stream), straight from the origin: an
independent decoder (ffmpeg) hears the speaker in the init section + the streamed parts."""

from __future__ import annotations

import asyncio
import tempfile
import time

import httpx

from tests.audio import decode, tone_share, whip_publish
from tests.conftest import LiveServer
from tests.e2e.test_live_audio import api_token, speaker
from tests.helpers import join, problem

PART_S = 16 * 1024 / 48_000


def moofs(data: bytes) -> int:
    """How many fragments (moof boxes) a run of top-level boxes holds; the bytes must end
    on a box boundary."""
    count, at = 0, 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        assert size >= 8, f"bad box size {size} at {at}"
        count += data[at + 4 : at + 8] == b"moof"
        at += size
    assert at == len(data), "the stream must be whole boxes"
    return count


def whole(body: bytes) -> bytes:
    """``body`` up to the end of its last whole top-level box."""
    cut = 0
    while cut + 8 <= len(body):
        size = int.from_bytes(body[cut : cut + 4], "big")
        if size < 8 or cut + size > len(body):
            break
        cut += size
    return body[:cut]


async def read_stream(
    base: str, url: str, seconds: float
) -> tuple[list[tuple[float, int]], bytes, dict[str, str]]:
    """Read ``url`` for ``seconds``: (arrival time, bytes) per chunk, all bytes, headers."""
    chunks: list[tuple[float, int]] = []
    body = b""
    async with (
        httpx.AsyncClient(base_url=base, timeout=20) as client,
        client.stream("GET", url) as resp,
    ):
        assert resp.status_code == 200, resp.text
        headers = dict(resp.headers)
        end = time.monotonic() + seconds
        async for chunk in resp.aiter_raw():
            chunks.append((time.monotonic(), len(chunk)))
            body += chunk
            if time.monotonic() > end:
                break
    return chunks, body, headers


async def test_the_stream_carries_the_program_part_by_part(media_server: LiveServer, live_space):
    host, sid = live_space(title="Stream")
    a = speaker(media_server, host, sid)
    pub = await whip_publish(media_server.url, sid, api_token(a), 440)
    try:
        await asyncio.sleep(1.5)
        with media_server.client() as anon:
            urls = join(anon, sid)["urls"]
            init = anon.get(urls["init"])
            assert init.status_code == 200
        assert urls["stream"].startswith(f"/listen/{sid}/tbl_")
        began = time.monotonic()
        chunks, body, headers = await read_stream(media_server.url, urls["stream"], 4.0)
        assert headers["content-type"] == "audio/mp4"
        assert headers["cache-control"] == "no-store"
        # The backlog (2 parts) at once, then about one part every 0.341 s, as made.
        first = [n for t, n in chunks if t - began < 0.25]
        assert first, "the backlog comes at once"
        seconds = chunks[-1][0] - began
        # Chunks can merge or split; count whole fragments by reading whole boxes.
        cut = len(whole(body))
        fragments = moofs(body[:cut])
        assert 2 + (seconds - 1.0) / PART_S <= fragments <= 2 + (seconds + 0.5) / PART_S + 1
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(init.content + body[:cut])
            f.flush()
            heard = await asyncio.to_thread(decode, f.name)
        assert len(heard) >= 3 * 48_000
        assert tone_share(heard[48_000:], 440) > 0.3
    finally:
        await pub.close()


async def test_the_stream_ends_when_the_space_ends(media_server: LiveServer, live_space):
    host, sid = live_space(title="Ending")
    with media_server.client() as anon:
        url = join(anon, sid)["urls"]["stream"]

    async def end_soon() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(host.post, f"/api/spaces/{sid}/end")

    ender = asyncio.create_task(end_soon())
    began = time.monotonic()
    _, body, _ = await read_stream(media_server.url, url, 30.0)
    await ender
    assert time.monotonic() - began < 10, "the response ends with the Space"
    assert moofs(body) >= 3


def test_the_stream_checks_the_token_and_the_space(
    media_server: LiveServer, live_space, media_anon
):
    host, sid = live_space()
    _, other = live_space()
    url = join(media_anon, sid)["urls"]["stream"]
    problem(media_anon.get(url.replace("/tbl_", "/tbl_x")), 401)
    problem(media_anon.get(url.replace(f"/listen/{sid}/", f"/listen/{other}/")), 403)
    problem(media_anon.get("/listen/nope/tbl_abc.def"), 401)
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "live"
