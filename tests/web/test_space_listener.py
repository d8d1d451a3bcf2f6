"""The Space page as a listener: recovering from stalls, waiting in line, a scheduled start,
reactions and the share link. Real server and real audio (an aiortc speaker); the one
fake is a waiting-room answer to a join, to script the line exactly (the real line is
tested in test_waiting_room.py)."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

from playwright.async_api import Route, expect

from tests.conftest import LiveServer
from tests.web.conftest import (
    LaunchBrowser,
    assert_usable,
    create_space,
    page_errors,
    screenshot,
)
from tests.web.space_helpers import CuttingProxy, open_space, playing, tones, unexpected


async def test_a_stalled_player_reconnects_and_comes_back_live(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """Cut the audio for a few seconds: the page says it is reconnecting, backs off, then
    plays again near the live edge and says it is back. (The page listens through one
    long response, ``/listen/``: the audio stops arriving on it while it stays open, and
    new requests for audio fail, either way of listening, until the network is back.)"""
    _, sid, _ = await on_air("Stalls")
    proxy = CuttingProxy(media_server)
    through = await proxy.start()
    try:
        browser = await launch_browser()
        page = await open_space(browser, through, sid)
        await page.get_by_role("button", name="▶ Play").click()
        await playing(page, beyond=1.0)

        async def refuse(route: Route) -> None:
            await route.abort()

        await page.route("**/hls/**", refuse)
        await page.route("**/listen/**", refuse)
        assert proxy.freeze(b"GET /listen/") == 1
        status = page.locator("#status")
        await expect(status).to_have_text("Reconnecting…", timeout=8000)
        await page.wait_for_timeout(3000)  # stays down a while: several attempts back off
        await page.unroute("**/hls/**", refuse)
        await page.unroute("**/listen/**", refuse)
        await expect(status).to_have_text("Back live.", timeout=12_000)
        await playing(page, beyond=1.0)
        heard = await tones(page, [440], want=440, seconds=3.0, stop_when_found=True)
        assert heard["found"] is not None, heard
        report = await page.evaluate(
            """() => ({ recoveries: window.tribune.player.recoveries,
                        delivery: window.tribune.player.delivery,
                        behind: window.tribune.player.liveEdge - window.tribune.audio.currentTime,
                        states: window.tribune.player.log.map((e) => e.state) })"""
        )
        assert report["recoveries"] >= 2, report  # it backed off and tried again
        assert report["behind"] < 4, report  # at the live edge, not where it stopped
        assert report["delivery"] == "stream", report  # a network failure is no reason for HLS
        await expect(status).to_have_text("Live.", timeout=6000)
        assert unexpected(page_errors(page), "net::ERR_FAILED") == []
    finally:
        await proxy.close()


async def test_a_queued_listener_sees_their_place_and_gets_in(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """A join answered 503 + Retry-After with a position (a scripted waiting room) shows
    the place in line, waits as told, retries, and plays once let in."""
    _, sid, _ = await on_air("Crowded")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)
    attempts: list[float] = []

    async def waiting_room(route: Route) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            body = {
                "type": "urn:tribune:problem:waiting-room",
                "title": "Waiting room",
                "status": 503,
                "detail": "the Space is full right now; you are in line",
                "position": 40 - 10 * len(attempts),
                "estimated_wait_s": 45 - 15 * len(attempts),
            }
            await route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                body=json.dumps(body),
            )
        else:
            await route.continue_()

    await page.route("**/api/spaces/*/join", waiting_room)
    await page.get_by_role("button", name="▶ Play").click()
    status = page.locator("#status")
    await expect(status).to_contain_text("You're in line: position 30, about 30 s")
    await expect(page.locator("#play")).to_have_text("Leave the line")
    await expect(status).to_contain_text("position 20, about 15 s", timeout=4000)
    await playing(page, beyond=0.5)
    await expect(status).to_have_text("Live.")
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(1.0 <= gap < 2.5 for gap in gaps), gaps  # Retry-After, plus a little jitter
    await expect(page.locator("#alert")).to_be_empty()
    assert unexpected(page_errors(page), "status of 503") == []


async def test_a_scheduled_space_plays_by_itself_when_it_starts(
    media_server: LiveServer, launch_browser: LaunchBrowser, people
) -> None:
    """Before the start: the time in the viewer's zone and "Play when it starts"; when the
    host goes live the page starts playing without another press."""
    host = people()
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    sid = create_space(host, title="Later tonight", scheduled_start=start.isoformat())["id"]
    try:
        browser = await launch_browser()
        page = await open_space(browser, media_server, sid, timezone_id="Asia/Tokyo")
        tokyo = (start + timedelta(hours=9)).strftime("%-I:%M")
        when = page.locator("#when")
        await expect(when).to_contain_text("Starting at")
        await expect(when).to_contain_text(tokyo)
        await expect(when).to_contain_text("GMT+9")
        await expect(page.locator("#badge")).to_have_text("Scheduled")
        arm = page.get_by_role("button", name="Play when it starts")
        await arm.click()
        await expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#status")).to_contain_text("as soon as the host goes live")
        await assert_usable(page)
        await screenshot(page, "space-scheduled")

        r = host.post(f"/api/spaces/{sid}/start")
        assert r.status_code == 200, r.text
        await expect(page.locator("#badge")).to_have_text("Live", timeout=4000)
        await playing(page, beyond=1.0)
        await expect(page.locator("#status")).to_have_text("Live.")
        assert page_errors(page) == []
    finally:
        host.post(f"/api/spaces/{sid}/end")


async def test_reactions_are_seen_by_others_and_429_is_a_friendly_pause(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """One guest's clap shows up on another guest's page; pressing too fast gets a calm
    message and a short rest, not an error."""
    _, sid, _ = await on_air("Applause")
    browser = await launch_browser()
    alice = await open_space(browser, media_server, sid)
    bob = await open_space(browser, media_server, sid)
    clap = alice.get_by_role("button", name="React: Clap")
    await clap.click()
    bob_clap = bob.locator('#reactions [data-reaction="clap"]')
    await expect(bob_clap).to_have_attribute("data-count", "1", timeout=3000)
    await expect(bob.locator('#reaction-stream [data-reaction="clap"]')).not_to_have_count(0)

    # Fifteen presses at once: the server allows five a second.
    await alice.evaluate(
        """() => { const b = document.querySelector('#reactions [data-reaction="clap"]');
                   for (let i = 0; i < 15; i++) b.click(); }"""
    )
    await expect(alice.locator("#reaction-status")).to_contain_text("a lot of reactions")
    await expect(clap).to_have_attribute("aria-disabled", "true")
    await expect(clap).not_to_have_attribute("aria-disabled", "true", timeout=4000)
    await expect(alice.locator("#reaction-status")).to_be_empty()
    await expect(alice.locator("#alert")).to_be_empty()
    await clap.click()
    assert unexpected(page_errors(alice), "status of 429") == []
    assert page_errors(bob) == []


async def test_the_share_link_is_copied_or_shared(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """Share copies the Space's address (and says so); where the system share sheet
    exists, it is used instead."""
    _, sid, _ = await on_air("Tell your friends")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    address = f"{media_server.url}/spaces/{sid}"
    await page.evaluate(
        "() => { Object.defineProperty(navigator, 'share', { value: undefined }); }"
    )
    await page.get_by_role("button", name="Share").click()
    await expect(page.locator("#share-status")).to_contain_text("Link copied")
    assert await page.evaluate("() => navigator.clipboard.readText()") == address

    await page.add_init_script("navigator.share = async (data) => { window.sharedWith = data; };")
    await page.reload()
    await page.wait_for_function("() => window.tribune.ready")
    await page.get_by_role("button", name="Share").click()
    await expect(page.locator("#share-status")).to_have_text("Shared.")
    shared = await page.evaluate("() => window.sharedWith")
    assert shared["url"] == address
    assert shared["title"] == "Tell your friends"
    assert page_errors(page) == []


async def test_a_listener_can_do_it_all_from_the_keyboard(
    media_server: LiveServer, launch_browser: LaunchBrowser, on_air
) -> None:
    """Tab reaches Play and the reactions, Enter and Space press them, and the focused
    control is visibly outlined."""
    _, sid, _ = await on_air("Keyboard")
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid)

    async def tab_to(selector: str) -> None:
        for _ in range(30):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"() => document.activeElement.matches('{selector}')"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    await tab_to("#play")
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline
    await page.keyboard.press("Enter")
    await playing(page, beyond=1.0)
    await tab_to('#reactions [data-reaction="heart"]')
    await page.keyboard.press("Space")
    heart = page.locator('#reactions [data-reaction="heart"]')
    await expect(heart).to_have_attribute("data-count", "1", timeout=3000)
    await tab_to("#play")  # wraps around: nothing traps the keyboard
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("Paused.")
    assert page_errors(page) == []
