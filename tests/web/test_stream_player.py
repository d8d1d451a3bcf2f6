"""The listener's player on the one-response stream (``urls.stream``, ``/listen/...``), in
real Chromium against the real server: one request for a whole listening session, the
host's voice about a second later, a cut connection that comes back by itself, a
refused token joined again, and hls.js when there is no stream."""

from __future__ import annotations

import asyncio
import json
import statistics
from typing import Any

from playwright.async_api import Page, Request, Route, expect

from tests.audio import Publisher
from tests.conftest import LiveServer
from tests.web.conftest import LaunchBrowser, page_errors
from tests.web.space_helpers import (
    CuttingProxy,
    Stopwatch,
    open_space,
    playing,
    tones,
    unexpected,
)


def tone(pub: Publisher) -> Any:
    """The publisher's ToneTrack (its ``freq`` is read for every 20 ms frame)."""
    return pub.pc.getTransceivers()[0].sender.track


def audio_requests(page: Page) -> list[str]:
    """Every audio request the page makes from now on (paths only), as a live list."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        path = request.url.split("://", 1)[-1].split("/", 1)[-1]
        if path.startswith(("listen/", "hls/")):
            seen.append("/" + path)

    page.on("request", on_request)
    return seen


async def player_report(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """() => { const p = window.tribune.player, s = p.stream;
                   return { delivery: p.delivery, state: p.state, status: p.status,
                            behind: p.liveEdge === null ? null
                              : p.liveEdge - window.tribune.audio.currentTime,
                            rate: window.tribune.audio.playbackRate,
                            underruns: s ? s.underruns : null, jumps: s ? s.jumps : null,
                            target: s ? s.target : null, bytes: s ? s.bytes : null,
                            recoveries: p.recoveries,
                            log: p.log.map((e) => JSON.stringify(e)) }; }"""
    )


async def test_a_listener_hears_the_host_through_one_long_response(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """Play: the page listens through the stream, with ONE /listen/ request (and the init
    section) for ten seconds of audio, no playlist and no parts; the host's 440 Hz is
    heard, the position stays within a fraction of a second of the newest audio, a change
    of note reaches the ear about a second after it was sung, and when the host ends the
    Space (its body ends) the page says so without reconnecting."""
    host, sid, pub = await on_air("One response")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)
    requests = audio_requests(page)
    await page.get_by_role("button", name="▶ Play").click()
    heard = await tones(page, [440], want=440, seconds=5.0, stop_when_found=True)
    assert heard["found"] is not None, heard
    await expect(page.locator("#status")).to_have_text("Live.")
    report = await player_report(page)
    assert report["delivery"] == "stream", report
    assert any('"attach":"stream"' in e for e in report["log"]), report

    # Ten seconds of listening: how far behind the newest audio, four times a second.
    start = await page.evaluate("() => window.tribune.audio.currentTime")
    first = await page.evaluate("() => window.tribune.audio.buffered.start(0)")
    behind: list[float] = []
    for _ in range(40):
        await page.wait_for_timeout(250)
        report = await player_report(page)
        behind.append(report["behind"])
    end = await page.evaluate("() => window.tribune.audio.currentTime")
    assert end - start > 9.0, (start, end, report)  # it played all along
    assert max(behind) < 2.0, (behind, report)
    assert statistics.median(behind) < 1.2, (behind, report)

    # Glass to glass: the host changes note; how soon does the page play the new one?
    listening = asyncio.ensure_future(
        tones(page, [440, 880], want=880, seconds=6.0, stop_when_found=True)
    )
    await asyncio.sleep(0.5)  # the analyser is running
    tone(pub).freq = 880
    heard = await listening
    assert heard["found"] is not None, heard
    latency_s = heard["found"] / 1000 - 0.5
    assert latency_s < 2.0, (latency_s, heard, await player_report(page))

    # Left behind (a slow phone, a long GC pause): a little faster, or a jump when far.
    seek_back = "(s) => { const a = window.tribune.audio; a.currentTime = a.currentTime - s; }"
    await page.evaluate(seek_back, 1.6)
    await page.wait_for_function("() => window.tribune.audio.playbackRate > 1", timeout=2000)
    await page.evaluate(seek_back, 4.0)
    await page.wait_for_function(
        """() => window.tribune.player.stream.jumps >= 1
                 && window.tribune.player.liveEdge - window.tribune.audio.currentTime < 1.2""",
        timeout=2000,
    )

    # What was played more than ten seconds ago is let go of (a Space can last hours).
    await page.wait_for_function(
        f"() => window.tribune.audio.currentTime > {first} + 17", timeout=10_000
    )
    kept = await page.evaluate(
        """() => { const a = window.tribune.audio;
                   return [a.buffered.start(0), a.currentTime, a.buffered.length]; }"""
    )
    assert kept[0] > first, kept
    assert kept[1] - kept[0] < 15.5, kept

    listens = [r for r in requests if r.startswith("/listen/")]
    assert len(listens) == 1, requests
    others = [r for r in requests if not r.startswith("/listen/")]
    assert all(r.endswith("/init.mp4") for r in others), requests  # no playlist, no parts
    assert len(others) == 1, requests

    # The host ends the Space: the body ends, the page says so and does not reconnect.
    r = host.post(f"/api/spaces/{sid}/end")
    assert r.status_code == 200, r.text
    await expect(page.locator("#status")).to_have_text("This Space has ended.", timeout=5000)
    await page.wait_for_timeout(1500)
    assert len([r for r in requests if r.startswith("/listen/")]) == 1, requests
    log = await page.evaluate("() => window.tribune.player.log")
    assert log[-1]["state"] == "stopped", log
    assert any(e.get("streamEnded") for e in log), log  # the body ended: the room was asked
    assert unexpected(page_errors(page), "status of 404", "status of 409") == []


async def test_a_cut_stream_reconnects_and_comes_back_live(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """The connection carrying the stream is reset mid-play: the page says it is
    reconnecting and at once opens a new stream (a network failure is no reason to leave
    the stream for hls.js), plays near the live edge again and says it is back. (Longer
    outages, with backoff: test_space_listener's stall test.)"""
    _, sid, _ = await on_air("Cut")
    proxy = CuttingProxy(media_server)
    through = await proxy.start()
    try:
        browser = await launch_browser()
        page = await open_space(browser, through, sid)
        requests = audio_requests(page)
        await page.get_by_role("button", name="▶ Play").click()
        await playing(page, beyond=1.0)
        assert (await player_report(page))["delivery"] == "stream"

        assert proxy.cut(b"GET /listen/") == 1
        clock = Stopwatch()
        status = page.locator("#status")
        await expect(status).to_have_text("Reconnecting…", timeout=3000)
        await expect(status).to_have_text("Back live.", timeout=5000)
        back_s = clock.elapsed
        await playing(page, beyond=1.0)
        heard = await tones(page, [440], want=440, seconds=3.0, stop_when_found=True)
        assert heard["found"] is not None, heard
        report = await player_report(page)
        assert back_s < 3.0, (back_s, report)
        assert report["delivery"] == "stream", report
        assert report["recoveries"] == 1, report
        assert report["behind"] is not None, report
        assert report["behind"] < 2.0, report
        assert len([r for r in requests if r.startswith("/listen/")]) == 2, requests
        assert not any('"fallback"' in e for e in report["log"]), report
        assert not any(r.endswith(".m3u8") for r in requests), requests
        await expect(status).to_have_text("Live.", timeout=6000)
        assert unexpected(page_errors(page), "net::ERR_FAILED", "ERR_INCOMPLETE_CHUNKED") == []
    finally:
        await proxy.close()


async def test_a_refused_token_joins_again_and_keeps_the_stream(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """An edge answers the stream 410 (the token expired): the page joins again, quietly,
    and listens through the stream with the new token."""
    _, sid, _ = await on_air("Expired")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)
    joins: list[str] = []
    page.on("request", lambda r: joins.append(r.url) if r.url.endswith("/join") else None)
    tokens: list[str] = []

    async def expire_once(route: Route) -> None:
        tokens.append(route.request.url.rstrip("/").rsplit("/", 1)[-1])
        if len(tokens) == 1:
            await route.fulfill(status=410, body="expired")
        else:
            await route.continue_()

    await page.route("**/listen/**", expire_once)
    await page.get_by_role("button", name="▶ Play").click()
    await playing(page, beyond=1.0)
    report = await player_report(page)
    assert report["delivery"] == "stream", report
    assert len(joins) == 2, joins
    assert len(tokens) == 2, tokens
    assert tokens[0] != tokens[1], tokens  # the second with the new token
    statuses = [e["status"] for e in await page.evaluate("() => window.tribune.player.log")]
    assert "Reconnecting…" not in statuses, statuses
    await expect(page.locator("#status")).to_have_text("Live.")
    assert unexpected(page_errors(page), "status of 410") == []


async def test_without_a_stream_the_player_falls_back_to_hls(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """Where ``/listen/`` answers 404 (an edge without the stream), the player tries it
    twice, then plays LL-HLS with hls.js, saying "Connecting…" meanwhile, not
    "Reconnecting…"; the host is heard."""
    _, sid, _ = await on_air("No stream here")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)
    requests = audio_requests(page)

    async def missing(route: Route) -> None:
        # what an edge made with ``tribune edge-config --no-stream`` answers
        body = {
            "type": "urn:tribune:problem:not-found",
            "title": "Not found",
            "status": 404,
            "detail": "this edge does not serve the stream: listen with /hls/ instead",
        }
        await route.fulfill(
            status=404, content_type="application/problem+json", body=json.dumps(body)
        )

    await page.route("**/listen/**", missing)
    await page.get_by_role("button", name="▶ Play").click()
    await playing(page, beyond=1.0)
    heard = await tones(page, [440], want=440, seconds=5.0, stop_when_found=True)
    assert heard["found"] is not None, heard
    report = await player_report(page)
    assert report["delivery"] == "hls", report
    assert await page.evaluate("() => window.tribune.hls.lowLatencyMode") is True
    assert len([r for r in requests if r.startswith("/listen/")]) == 2, requests
    assert any(r.endswith(".m3u8") or ".m3u8?" in r for r in requests), requests
    assert any('"fallback":"hls"' in e for e in report["log"]), report
    statuses = [e["status"] for e in await page.evaluate("() => window.tribune.player.log")]
    assert "Reconnecting…" not in statuses, statuses
    await expect(page.locator("#status")).to_have_text("Live.")
    assert unexpected(page_errors(page), "status of 404") == []
