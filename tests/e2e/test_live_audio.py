"""Microphone to ear through real components: aiortc speakers publish over WHIP, the
server mixes and packages LL-HLS, and ffmpeg (an independent client) listens."""

from __future__ import annotations

import asyncio
import tempfile
import time

import httpx
import numpy as np
import pytest

from tests.audio import decode, listen_live, tone_share, wait_segments, whip_publish
from tests.conftest import LiveServer
from tests.helpers import Person, bearer, join, problem, sign_up


def api_token(person: Person) -> dict[str, str]:
    r = person.post("/api/tokens", json={"name": "whip"})
    assert r.status_code == 201
    return bearer(r.json()["token"])


def speaker(media_server: LiveServer, host: Person, sid: str) -> Person:
    person = sign_up(media_server.url)
    r = host.post(f"/api/spaces/{sid}/invitations", json={"user_id": person.user["id"]})
    assert r.status_code == 201
    assert person.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204
    return person


async def program_since(base: str, playlist: str, since: float, seconds: float) -> np.ndarray:
    """Download the segments made after ``since`` and decode them with ffmpeg."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        uris = await wait_segments(client, playlist, since, seconds)
        folder = playlist.rsplit("/", 1)[0]
        data = (await client.get(f"{folder}/init.mp4")).content
        for uri in uris:
            data += (await client.get(f"{folder}/{uri}")).content
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(data)
        f.flush()
        return await asyncio.to_thread(decode, f.name)


async def test_two_speakers_reach_listeners_and_hear_each_other(
    media_server: LiveServer, live_space
):
    """440 Hz + 660 Hz in; ffmpeg on the live playlist hears both; A's return holds only B."""
    host, sid = live_space(title="Tones")
    a, b = speaker(media_server, host, sid), speaker(media_server, host, sid)
    pub_a = await whip_publish(media_server.url, sid, api_token(a), 440, sendrecv=True)
    pub_b = await whip_publish(media_server.url, sid, api_token(b), 660, sendrecv=True)
    published = time.time()
    try:
        with media_server.client() as media_anon:
            playlist = join(media_anon, sid)["urls"]["playlist"]
        # Independent client on the live playlist itself, from the first segment of tones.
        heard = await listen_live(media_server.url, playlist, since=published, seconds=4.0)
        assert len(heard) >= 3.5 * 48_000
        assert tone_share(heard, 440) > 0.2
        assert tone_share(heard, 660) > 0.2

        # A's mix-minus: everyone but A.
        assert pub_a.received, "a sendrecv speaker gets the mix-minus back"
        track = pub_a.received[0]
        frames = [await asyncio.wait_for(track.recv(), 5) for _ in range(100)]
        # aiortc hands out packed (interleaved) s16: keep the first channel.
        back = np.concatenate(
            [f.to_ndarray().reshape(-1)[:: len(f.layout.channels)] for f in frames[50:]]
        )
        back = back.astype(np.float32) / 32768
        assert tone_share(back, 660) > 0.3
        assert tone_share(back, 440) < 0.02

        # Muting B through the API removes 660 Hz from the program within 1 s.
        muted_at = time.time()
        r = host.post(f"/api/spaces/{sid}/members/{b.user['id']}/mute")
        assert r.status_code == 204
        after = await program_since(media_server.url, playlist, muted_at + 1.0, 2.0)
        assert tone_share(after, 660) < 0.02
        assert tone_share(after, 440) > 0.3
    finally:
        await pub_a.close()
        await pub_b.close()


async def test_room_state_shows_who_is_talking(media_server: LiveServer, live_space):
    """A publishing speaker's level rises in the shared room state; a silent host's does not."""
    host, sid = live_space()
    a = speaker(media_server, host, sid)
    pub = await whip_publish(media_server.url, sid, api_token(a), 440)
    try:
        async with httpx.AsyncClient(base_url=media_server.url) as c:
            deadline = time.monotonic() + 10
            while True:
                stage = {
                    m["user_id"]: m
                    for m in (await c.get(f"/api/spaces/{sid}/state")).json()["stage"]
                }
                if stage[a.user["id"]]["level"] > 0.1:
                    break
                assert time.monotonic() < deadline, stage
                await asyncio.sleep(0.2)
            assert stage[host.user["id"]]["level"] < 0.05
    finally:
        await pub.close()


async def test_demoted_speaker_is_cut_off_within_a_second(media_server: LiveServer, live_space):
    """Demotion closes the speaker's WebRTC session on the server side promptly."""
    host, sid = live_space()
    a = speaker(media_server, host, sid)
    pub = await whip_publish(media_server.url, sid, api_token(a), 440)
    try:
        deadline = time.monotonic() + 10
        while pub.pc.connectionState != "connected":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        demoted_at = time.monotonic()
        assert host.post(f"/api/spaces/{sid}/members/{a.user['id']}/demote").status_code == 204
        while pub.pc.connectionState not in ("closed", "failed", "disconnected"):
            assert time.monotonic() - demoted_at < 5, pub.pc.connectionState
            await asyncio.sleep(0.05)
        # The server no longer holds the session: its WHIP resource is gone.
        with media_server.client() as c:
            problem(c.delete(pub.location, headers=api_token(a)), 404)
    finally:
        await pub.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "contains"),
    [
        (b"this is not sdp", "application/sdp", 422, "SDP"),
        (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "application/sdp", 422, "audio"),
        (b"v=0", "application/json", 415, "application/sdp"),
    ],
)
def test_bad_whip_offers(
    media_server: LiveServer, live_space, body, content_type, status, contains
):
    """Garbage, audio-less offers and wrong content types get a clear 4xx; the Space lives on."""
    host, sid = live_space()
    r = host.post(f"/api/spaces/{sid}/whip", content=body, headers={"Content-Type": content_type})
    problem(r, status, contains=contains)
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "live"


def test_whip_needs_a_stage_role(media_server: LiveServer, live_space, media_anon):
    """A listener token or a listener account cannot publish: 403."""
    host, sid = live_space()
    fan = sign_up(media_server.url)
    token = join(media_anon, sid)["listener_token"]
    sdp = {"Content-Type": "application/sdp"}
    problem(
        media_anon.post(
            f"/api/spaces/{sid}/whip", content=b"v=0", headers={**sdp, **bearer(token)}
        ),
        403,
    )
    problem(
        fan.post(f"/api/spaces/{sid}/whip", content=b"v=0", headers=sdp), 403, contains="listener"
    )
    big = b"v=0\r\n" + b"a=x\r\n" * 20_000
    problem(host.post(f"/api/spaces/{sid}/whip", content=big, headers=sdp), 413)


def test_hls_rejects_bad_blocking_requests_and_tokens(
    media_server: LiveServer, live_space, media_anon
):
    """_HLS_msn negative, non-numeric or far ahead, and forged tokens: clear 4xx."""
    host, sid = live_space()
    playlist = join(media_anon, sid)["urls"]["playlist"]
    problem(media_anon.get(playlist, params={"_HLS_msn": "-1"}), 422, contains="_HLS_msn")
    problem(media_anon.get(playlist, params={"_HLS_msn": "abc"}), 422, contains="_HLS_msn")
    problem(media_anon.get(playlist, params={"_HLS_msn": "999999"}), 422)
    problem(media_anon.get(playlist, params={"_HLS_part": "1"}), 422, contains="_HLS_msn")
    forged = playlist.replace("/tbl_", "/tbl_x")
    problem(media_anon.get(forged), 401)
    assert media_anon.get(playlist).status_code == 200
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "live"


async def test_gstreamer_hlsdemux_plays_the_live_playlist(
    media_server: LiveServer, live_space, tmp_path
):
    """A second independent player, GStreamer's hlsdemux, decodes the tone from the live edge."""
    host, sid = live_space(title="GStreamer")
    pub = await whip_publish(
        media_server.url, sid, api_token(speaker(media_server, host, sid)), 440
    )
    published = time.time()
    try:
        with media_server.client() as client:
            playlist = join(client, sid)["urls"]["playlist"]
        async with httpx.AsyncClient(base_url=media_server.url) as client:
            await wait_segments(client, playlist, since=published, seconds=1.0)
        out = tmp_path / "gst.raw"
        pipeline = [
            "gst-launch-1.0",
            "-q",
            "souphttpsrc",
            f"location={media_server.url}{playlist}",
            "!",
            "hlsdemux",
            "!",
            "qtdemux",
            "!",
            "avdec_aac",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
            "audio/x-raw,format=S16LE,channels=1,rate=48000",
            "!",
            "filesink",
            f"location={out}",
        ]
        proc = await asyncio.create_subprocess_exec(*pipeline)
        await asyncio.sleep(8)  # a live playlist never ends: listen for a while, then stop
        proc.terminate()
        await proc.wait()
        heard = np.fromfile(out, dtype=np.int16).astype(np.float32) / 32768
        assert len(heard) >= 4 * 48_000
        assert tone_share(heard, 440) > 0.3
    finally:
        await pub.close()
