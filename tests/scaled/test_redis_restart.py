"""Redis restarts under a live Space (an API worker and a media node on it): listeners
keep playing, and presence and control come back within 5 s of Redis returning."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.audio import whip_publish
from tests.conftest import LiveServer
from tests.e2e.test_live_audio import api_token
from tests.helpers import bearer, create_space, join, sign_up
from tribune.devservers import free_port, running_redis


async def newest_part(client: httpx.AsyncClient, playlist: str) -> str:
    resp = await client.get(playlist)
    assert resp.status_code == 200, resp.text
    return [line for line in resp.text.splitlines() if "URI=" in line][-1]


async def test_listeners_play_through_a_redis_restart(
    scaled_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    port = free_port()
    redis = contextlib.ExitStack()
    url = redis.enter_context(running_redis(port=port))
    try:
        shared = {"data_dir": tmp_path, "secret_key": secrets.token_hex(32), "redis_url": url}
        node = scaled_server(**shared, media=True)
        api = scaled_server(**shared, media=False, media_url=node.url)
        host = sign_up(api.url)
        sid = create_space(host, title="Redis restart")["id"]
        talker = sign_up(api.url)
        invited = host.post(f"/api/spaces/{sid}/invitations", json={"user_id": talker.user["id"]})
        assert invited.status_code == 201
        assert talker.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204
        with httpx.Client(base_url=api.url) as guest:
            joined = join(guest, sid)
        playlist, token = joined["urls"]["playlist"], joined["listener_token"]
        pub = await whip_publish(api.url, sid, api_token(talker), 440)
        try:
            async with (
                httpx.AsyncClient(base_url=node.url, timeout=10) as media,
                httpx.AsyncClient(base_url=api.url, timeout=10) as control,
            ):

                async def level() -> float:
                    doc = (await media.get(f"/api/spaces/{sid}/state")).json()
                    return float(
                        next(m["level"] for m in doc["stage"] if m["user_id"] == talker.user["id"])
                    )

                deadline = time.monotonic() + 10
                while await level() < 0.3:
                    assert time.monotonic() < deadline, "the speaker is not heard"
                    await asyncio.sleep(0.2)

                redis.close()  # Redis goes away
                before = await newest_part(media, playlist)
                await asyncio.sleep(1.5)
                assert await newest_part(media, playlist) != before, "playback stopped"
                beat = await control.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token))
                assert beat.status_code == 200, beat.text  # last known counts meanwhile

                redis.enter_context(running_redis(port=port))  # and comes back, empty
                back = time.monotonic()
                muted = await asyncio.to_thread(
                    host.post, f"/api/spaces/{sid}/members/{talker.user['id']}/mute"
                )
                assert muted.status_code == 204, muted.text
                while await level() > 0.0:  # the node applied the mute
                    assert time.monotonic() - back < 5, "control did not resume in 5 s"
                    await asyncio.sleep(0.1)
                while True:
                    await control.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token))
                    doc = (await control.get(f"/api/spaces/{sid}/state")).json()
                    if doc["listeners"]["concurrent"] >= 1:
                        break
                    assert time.monotonic() - back < 5, "presence did not resume in 5 s"
                    await asyncio.sleep(0.3)
                assert await newest_part(media, playlist) != before
        finally:
            await pub.close()
        host.post(f"/api/spaces/{sid}/end")
    finally:
        redis.close()
