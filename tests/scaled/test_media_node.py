"""The scaled shape of live audio: an API-only worker decides, one media node plays.

Worker A runs with ``TRIBUNE_MEDIA=false`` and ``TRIBUNE_MEDIA_URL`` pointing at the media
node B; both share Redis and the database. Everything a host or speaker does goes to A:
going live starts the stage on B (over the event bus), WHIP is forwarded to B, a host
mute on A silences the speaker on B, speaking levels made on B show in A's room state,
and ending on A stops B's media. Listeners' HLS comes from B (an edge routes it there).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.audio import tone_share, whip_publish
from tests.conftest import LiveServer
from tests.e2e.test_live_audio import api_token, program_since
from tests.helpers import create_space, join, sign_up


async def until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.1)


async def test_an_api_worker_drives_the_media_node(
    scaled_server: Callable[..., LiveServer], redis_url: str, tmp_path: Path
) -> None:
    shared = {"data_dir": tmp_path, "secret_key": secrets.token_hex(32), "redis_url": redis_url}
    node = scaled_server(**shared, media=True)
    api = scaled_server(**shared, media=False, media_url=node.url)

    host = sign_up(api.url)
    sid = create_space(host, title="Scaled")["id"]  # goes live on the API worker
    talker = sign_up(api.url)
    invited = host.post(f"/api/spaces/{sid}/invitations", json={"user_id": talker.user["id"]})
    assert invited.status_code == 201
    assert talker.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204

    with httpx.Client(base_url=api.url) as guest:
        playlist = join(guest, sid)["urls"]["playlist"]
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        started = time.monotonic()
        while (await client.get(playlist)).status_code != 200:  # the node started the stage
            assert time.monotonic() - started < 10, "the media node did not start the Space"
            await asyncio.sleep(0.1)

    # WHIP through the API worker: forwarded to the node, answered with its SDP.
    pub = await whip_publish(api.url, sid, api_token(talker), 440)
    try:
        assert pub.location.startswith(f"/api/spaces/{sid}/whip/")
        spoke = time.time()
        heard = await program_since(node.url, playlist, spoke, 2.0)
        assert tone_share(heard, 440) > 0.3

        def level() -> float:
            with httpx.Client(base_url=api.url) as client:
                stage = client.get(f"/api/spaces/{sid}/state").json()["stage"]
            return next(m["level"] for m in stage if m["user_id"] == talker.user["id"])

        await until(lambda: level() > 0.3, 5, "the speaker's level in the API's room state")

        # A host mute decided on the API worker silences the speaker on the node.
        muted = host.post(f"/api/spaces/{sid}/members/{talker.user['id']}/mute")
        assert muted.status_code == 204
        quiet_from = time.time() + 1.0
        after = await program_since(node.url, playlist, quiet_from, 2.0)
        assert tone_share(after, 440) < 0.05
        await until(lambda: level() == 0.0, 5, "a muted speaker reads 0")

        # WHIP DELETE through the API worker reaches the node's session too.
        async with httpx.AsyncClient(base_url=api.url) as client:
            gone = await client.delete(pub.location, headers=api_token(talker))
        assert gone.status_code == 200
    finally:
        await pub.close()

    assert host.post(f"/api/spaces/{sid}/end").status_code == 200
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        ended = time.monotonic()
        while (await client.get(playlist)).status_code == 200:
            assert time.monotonic() - ended < 10, "the media node kept the Space running"
            await asyncio.sleep(0.1)


def test_whip_to_an_unreachable_media_node_is_a_clear_503(
    scaled_server: Callable[..., LiveServer], redis_url: str, tmp_path: Path
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    api = scaled_server(
        data_dir=tmp_path, secret_key=secrets.token_hex(32), redis_url=redis_url,
        media=False, media_url=dead,
    )  # fmt: skip
    host = sign_up(api.url)
    sid = create_space(host)["id"]
    resp = host.post(
        f"/api/spaces/{sid}/whip",
        content=b"v=0\r\n",
        headers={"Content-Type": "application/sdp", **api_token(host)},
    )
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "media node" in resp.json()["detail"]
