"""Listeners through a real nginx edge in front of a real origin: playing, caching,
signed URLs checked at the edge, rate limits, and the shared room state."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.audio import listen_live, tone_share, whip_publish
from tests.broadcast.hls import parse_playlist
from tests.edge.conftest import Edge, Origin, Space
from tests.edge.rawhttp import RawPool
from tests.helpers import bearer, create_space, sign_up
from tribune.admission.tokens import ListenerTokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def problem(r: httpx.Response, status: int, contains: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:tribune:problem:")
    assert contains in body["detail"], body
    return body


async def test_a_listener_plays_through_the_edge_and_the_second_one_hits_the_cache(
    origin: Origin, edge: Edge
):
    """Playlist parses, parts fetch, ffmpeg decodes the tone through the edge; a second
    listener's request for the same part is a HIT and the origin saw that part once."""
    host = sign_up(origin.url)
    sid = create_space(host, title="Tone through the edge")["id"]
    token = host.post("/api/tokens", json={"name": "whip"}).json()["token"]
    publisher = await whip_publish(origin.url, sid, bearer(token), 440)
    published = time.time()
    try:
        first, second = edge.join(sid), edge.join(sid)
        assert first["listener_token"] != second["listener_token"]
        playlist = first["urls"]["playlist"]
        folder = playlist.rsplit("/", 1)[0]
        async with httpx.AsyncClient(base_url=edge.url, timeout=20) as client:
            # A blocking request through the edge: held until part 0.1 exists.
            r = await client.get(playlist, params={"_HLS_msn": 0, "_HLS_part": 1})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
            parsed = parse_playlist(r.text)
            assert parsed.preload_hint is not None
            parts = [p for s in parsed.segments for p in s.parts] + parsed.open_parts
            assert parts, r.text
            part = parts[-1].uri
            init = await client.get(f"{folder}/init.mp4")
            assert init.status_code == 200
            assert init.content[4:8] == b"ftyp"

            got = await client.get(f"{folder}/{part}")
            assert got.status_code == 200
            assert got.headers["x-cache-status"] in ("MISS", "HIT")
            other = second["urls"]["playlist"].rsplit("/", 1)[0]
            again = await client.get(f"{other}/{part}")
            assert again.status_code == 200
            assert again.headers["x-cache-status"] == "HIT"
            assert again.content == got.content
        # Two listeners, two tokens, one request at the origin.
        fetched = [s for s in origin.requests(f"/hls/{sid}/") if s.path.endswith(f"/{part}")]
        assert len(fetched) == 1, fetched

        heard = await listen_live(edge.url, playlist, since=published, seconds=3.0)
        assert len(heard) >= 2.5 * 48_000
        assert tone_share(heard, 440) > 0.3
    finally:
        await publisher.close()
        host.post(f"/api/spaces/{sid}/end")


def _forged(token: str) -> str:
    """The same token with one bit of its signature flipped."""
    payload, sig = token[len("tbl_") :].split(".")
    raw = bytearray(_unb64(sig))
    raw[5] ^= 0x01
    return f"tbl_{payload}.{_b64(bytes(raw))}"


def _tampered(token: str) -> str:
    """Another listener id in the payload, the original signature kept."""
    payload, sig = token[len("tbl_") :].split(".")
    version, space, _, expiry = _unb64(payload).decode().split(":")
    return f"tbl_{_b64(f'{version}:{space}:g_someone_else:{expiry}'.encode())}.{sig}"


def test_bad_listener_urls_die_at_the_edge(origin: Origin, edge: Edge, space: Space):
    """Forged, tampered, another Space's and malformed tokens: 403; expired: 410. All as
    problem JSON, and none of them reaches the origin."""
    token = edge.join(space.id)["listener_token"]
    other_space = create_space(space.host, title="Another")["id"]
    try:
        others = edge.join(other_space)["listener_token"]
        expired, _ = ListenerTokens(origin.secret, 60).issue(
            space.id, "g_late", now=time.time() - 120
        )
        cases = [
            (_forged(token), 403, "signature does not match"),
            (_tampered(token), 403, "signature does not match"),
            (others, 403, "for another Space"),
            ("tbl_garbage", 403, "malformed"),
            ("tbl_a.b.c", 403, "malformed"),
            ("not-a-token", 403, "malformed"),
            (token[:-3], 403, "signature does not match"),
            (expired, 410, "expired"),
        ]
        mark = time.monotonic()
        with edge.client() as client:
            for bad, status, detail in cases:
                for name in ("live.m3u8", "init.mp4", "part0.0.m4s", "seg0.m4s"):
                    problem(client.get(f"/hls/{space.id}/{bad}/{name}"), status, detail)
                r = client.get(f"/hls/{space.id}/{bad}/live.m3u8?_HLS_msn=1&_HLS_part=0")
                problem(r, status, detail)
            # The genuine token still plays.
            assert client.get(f"/hls/{space.id}/{token}/live.m3u8").status_code == 200
        reached = [s for s in origin.requests("/hls/", mark) if token not in s.path]
        assert reached == [], reached
        # The edge's access log names no token, good or bad.
        assert edge.log()
        assert not [line for line in edge.log() if "tbl_" in line]
    finally:
        space.host.post(f"/api/spaces/{other_space}/end")


def test_unknown_files_and_bad_blocking_parameters_are_answered_at_the_edge(
    origin: Origin, edge: Edge, space: Space
):
    token = edge.join(space.id)["listener_token"]
    base = f"/hls/{space.id}/{token}"
    mark = time.monotonic()
    with edge.client() as client:
        problem(client.get(f"{base}/secret.txt"), 404, "no such file")
        problem(client.get(f"{base}/live.m3u8?_HLS_part=1"), 422, "_HLS_msn")
        problem(client.get(f"{base}/live.m3u8?_HLS_msn=-1"), 422, "non-negative")
        problem(client.get(f"{base}/live.m3u8?_HLS_msn=1&_HLS_msn=2"), 422, "once")
    assert origin.requests("/hls/", mark) == []


async def test_over_the_per_address_rate_is_429(start_edge: Callable[..., Edge], space: Space):
    """A burst beyond the limit gets 429 with a problem body and Retry-After; the audio and
    the room state share the listeners' limit, the rest of the API has its own."""
    edge = start_edge("--rate", "5", "--burst", "5")
    token = edge.join(space.id)["listener_token"]
    init = f"/hls/{space.id}/{token}/init.mp4"
    state = f"/api/spaces/{space.id}/state"
    async with RawPool("127.0.0.1", edge.port, 40) as pool:
        answers = await pool.fire([init] * 20 + [state] * 20)
    statuses = [a.status for a in answers]
    assert statuses.count(200) in range(5, 8), statuses  # the burst, plus what refilled
    assert statuses.count(429) >= 33, statuses
    assert 429 in statuses[20:], "the room state is limited too"
    limited = next(a for a in answers if a.status == 429)
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "1"
    assert b"too many requests" in limited.body
    with edge.client() as client:
        assert client.get(f"/api/spaces/{space.id}").status_code == 200


async def test_room_state_is_served_from_cache_with_background_updates(
    origin: Origin, edge: Edge, space: Space
):
    """200 requests over about 3 s: the origin sees about one per second (max-age=1, stale
    served while one background request refreshes it), and every answer is the document.
    (nginx counts validity in whole seconds, so a copy lives 1 to 2 s.)"""
    path = f"/api/spaces/{space.id}/state"
    with edge.client() as client:
        client.get(path)  # warm: the first request is a MISS and goes through
    mark = time.monotonic()
    answers = []
    async with RawPool("127.0.0.1", edge.port, 25) as pool:
        for _ in range(8):
            answers += await pool.fire([path] * 25)
            await asyncio.sleep(0.4)
    elapsed = time.monotonic() - mark
    assert all(a.status == 200 for a in answers)
    assert all(a.body.startswith(b"{") and a.headers["etag"] for a in answers)
    statuses = {a.headers["x-cache-status"] for a in answers}
    assert statuses <= {"HIT", "STALE", "UPDATING", "REVALIDATED", "EXPIRED"}, statuses
    reached = origin.requests(path, mark)
    assert 1 <= len(reached) <= elapsed + 1, (len(reached), elapsed)
    # Conditional requests are answered by the edge from its copy (the document changes
    # every second or so while people speak, so the copy may move on in between).
    with edge.client() as client:
        codes = []
        for _ in range(5):
            etag = client.get(path).headers["etag"]
            codes.append(client.get(path, headers={"If-None-Match": etag}).status_code)
        assert 304 in codes, codes
    print(f"room state: {len(answers)} requests in {elapsed:.2f} s, {len(reached)} at the origin")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_hls_is_read_only(edge: Edge, space: Space, method: str):
    token = edge.join(space.id)["listener_token"]
    with edge.client() as client:
        r = client.request(method, f"/hls/{space.id}/{token}/live.m3u8")
    assert r.status_code == 405


def test_the_edge_answers_its_own_health_check(edge: Edge, origin: Origin):
    mark = time.monotonic()
    with edge.client() as client:
        r = client.get("/edge-health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert origin.requests("", mark) == []


def test_the_origin_gets_only_what_the_cache_key_says(origin: Origin, edge: Edge, space: Space):
    """Parameters a client adds are dropped on the way to the origin: what is cached under
    a key is exactly the answer to that key."""
    token = edge.join(space.id)["listener_token"]
    base = f"/hls/{space.id}/{token}"
    with edge.client() as client:
        text = client.get(f"{origin.url}{base}/live.m3u8").text
        hint = parse_playlist(text).preload_hint
        assert hint is not None
        msn, part = (int(n) for n in hint["URI"][4:-4].split("."))
        mark = time.monotonic()
        extra = {"evil": "1", "_HLS_skip": "YES"}
        r = client.get(f"{base}/live.m3u8", params={"_HLS_msn": msn, "_HLS_part": part, **extra})
        assert r.status_code == 200
        assert client.get(f"{base}/{hint['URI']}", params=extra).status_code == 200
        done = max(msn - 1, 0)  # a whole segment: no _HLS_part
        assert client.get(f"{base}/live.m3u8", params={"_HLS_msn": done}).status_code == 200
    seen = {(s.path.rsplit("/", 1)[1], s.query) for s in origin.requests(f"/hls/{space.id}/", mark)}
    assert seen == {
        ("live.m3u8", f"_HLS_msn={msn}&_HLS_part={part}"),
        (hint["URI"], ""),
        ("live.m3u8", f"_HLS_msn={done}"),
    }
