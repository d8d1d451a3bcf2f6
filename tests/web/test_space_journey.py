"""The whole journey of a Space, through its page, in real Chromium, against the real server.

A host goes live and speaks (440 Hz microphone); a guest listens and hears the host; that
listener signs in, asks to speak, is brought on stage and speaks (660 Hz): another listener
hears them, and they hear the host but not themselves; the host moderates them and ends the
Space. Nothing here talks to the API behind the pages' backs except to create the accounts
and the Space.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.conftest import LiveServer
from tests.web.conftest import (
    LaunchBrowser,
    assert_usable,
    create_space,
    log_in_page,
    page_errors,
    screenshot,
)
from tests.web.space_helpers import (
    Stopwatch,
    member,
    moderate,
    open_space,
    playing,
    speaking_started,
    tones,
    unexpected,
)

#: how soon a change made on one page must show on the others (the issue's bound)
WITHIN_MS = 2000


async def on_both(*checks: object) -> None:
    """Run the expectations on several pages at once (each with its own 2 s bound)."""
    await asyncio.gather(*checks)  # type: ignore[arg-type]


async def count_and_label(page: Page) -> dict[str, object]:
    return await page.evaluate(
        """() => {
            const label = document.querySelector('.listeners-label').getBoundingClientRect();
            const status = document.getElementById('status').getBoundingClientRect();
            return { count: document.getElementById('count').textContent,
                     label: [label.x, label.y], status: [status.x, status.y, status.width] };
        }"""
    )


async def test_a_space_from_going_live_to_the_end(
    media_server: LiveServer, launch_browser: LaunchBrowser, people
) -> None:
    """Go live, speak, listen, bring a listener on stage, moderate, end: all in the pages."""
    host = people()
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sid = create_space(host, title="The journey", scheduled_start=start)["id"]
    try:
        # 1. The host opens the page, goes live and speaks (440 Hz).
        host_browser = await launch_browser(mic_hz=440)
        hpage = await open_space(host_browser, media_server, sid, host)
        await hpage.get_by_role("button", name="Go live now").click()
        await expect(hpage.locator("#badge")).to_have_text("Live", timeout=5000)
        await hpage.get_by_role("button", name="Join the stage").click()
        await speaking_started(hpage)
        await expect(hpage.locator("#mic-status")).to_have_attribute("data-state", "live")
        # The server hears the host: their own page shows them speaking (the room's levels).
        host_card = member(hpage, host.user["id"])
        await expect(host_card).to_have_attribute("data-speaking", "true", timeout=10_000)

        # 2. A guest in another browser presses Play and hears the host within 5 s.
        fan_browser = await launch_browser(mic_hz=660)
        fpage = await open_space(fan_browser, media_server, sid)
        clock = Stopwatch()
        await fpage.get_by_role("button", name="▶ Play").click()
        heard = await tones(fpage, [440], want=440, seconds=5.0, stop_when_found=True)
        assert heard["found"] is not None, heard
        assert clock.elapsed < 5.0, f"the host's tone took {clock.elapsed:.1f} s to arrive"
        await playing(fpage, beyond=1.0)
        # the low-latency way: one long response carrying every part (not hls.js)
        assert await fpage.evaluate("() => window.tribune.player.delivery") == "stream"
        await expect(fpage.locator("#status")).to_have_text("Live.")
        await expect(member(fpage, host.user["id"])).to_have_attribute("data-speaking", "true")
        await expect(fpage.locator("#count")).to_have_text("1", timeout=5000)
        await assert_usable(fpage)
        await screenshot(fpage, "space-listener")

        # 3. The listener signs in, asks to speak; the host accepts; they speak (660 Hz).
        fan = people()
        await log_in_page(fpage.context, media_server, fan)
        await fpage.reload()
        await fpage.wait_for_function("() => window.tribune.ready && window.tribune.me !== null")
        await fpage.get_by_role("button", name="Request to speak").click()
        await expect(fpage.locator("#you-body")).to_contain_text("You asked to speak")
        name = fan.user["display_name"]
        accept = hpage.get_by_role("button", name=f"Accept: {name}")
        await expect(accept).to_be_visible(timeout=WITHIN_MS)
        await expect(hpage.locator("#requests-count")).to_have_text("1")
        await assert_usable(hpage)
        await accept.click()
        join = fpage.get_by_role("button", name="Join the stage")
        await expect(join).to_be_visible(timeout=WITHIN_MS)
        await join.click()
        await speaking_started(fpage)
        fan_card = member(hpage, fan.user["id"])
        await expect(fan_card).to_have_attribute("data-speaking", "true", timeout=10_000)

        # A third context, a guest: hears the new speaker. The count moves, nothing else.
        before = await count_and_label(fpage)
        lpage = await open_space(host_browser, media_server, sid)
        await lpage.get_by_role("button", name="▶ Play").click()
        await playing(lpage, beyond=0.5)
        heard = await tones(lpage, [440, 660], want=660, seconds=5.0, stop_when_found=True)
        assert heard["found"] is not None, heard
        await expect(fpage.locator("#count")).not_to_have_text(str(before["count"]), timeout=5000)
        after = await count_and_label(fpage)
        assert (after["label"], after["status"]) == (before["label"], before["status"]), (
            before,
            after,
        )
        # The speaker hears the host in their mix-minus, and not themselves.
        back = await tones(fpage, [440, 660], source="stage", seconds=2.5)
        assert back["levels"][440] > -85, back
        assert back["levels"][660] < back["levels"][440] - 25, back
        await expect(member(lpage, fan.user["id"])).to_have_attribute("data-role", "speaker")
        await assert_usable(fpage)
        await screenshot(fpage, "space-speaker")

        # 4. The host mutes, makes co-host, demotes and removes; each shows within 2 s.
        fid = fan.user["id"]
        await moderate(hpage, name, fid, "Mute")
        await on_both(
            expect(fpage.locator("#mic-status")).to_have_attribute(
                "data-state", "host-muted", timeout=WITHIN_MS
            ),
            expect(member(lpage, fid)).to_have_attribute("data-muted", "true", timeout=WITHIN_MS),
        )
        await moderate(hpage, name, fid, "Make co-host")
        await on_both(
            expect(member(fpage, fid)).to_have_attribute("data-role", "cohost", timeout=WITHIN_MS),
            expect(member(lpage, fid)).to_have_attribute("data-role", "cohost", timeout=WITHIN_MS),
        )
        await assert_usable(hpage)
        await screenshot(hpage, "space-host")
        await moderate(hpage, name, fid, "Make speaker")
        await on_both(
            expect(member(fpage, fid)).to_have_attribute("data-role", "speaker", timeout=WITHIN_MS),
            expect(member(lpage, fid)).to_have_attribute("data-role", "speaker", timeout=WITHIN_MS),
        )
        await moderate(hpage, name, fid, "Remove")
        await hpage.locator("#confirm").get_by_role("button", name="Remove").click()
        await on_both(
            expect(fpage.locator("#you-body")).to_contain_text(
                "A host removed you from this Space", timeout=WITHIN_MS
            ),
            expect(member(lpage, fid)).to_have_count(0, timeout=WITHIN_MS),
        )
        assert await fpage.evaluate("() => window.tribune.mic.state") == "off"

        # 5. The host ends the Space; the listener's page says so and offers the replay.
        listening = len(page_errors(lpage))
        await hpage.get_by_role("button", name="End the Space").click()
        await hpage.locator("#confirm").get_by_role("button", name="End the Space").click()
        await expect(lpage.locator("#status")).to_have_text("This Space has ended.", timeout=5000)
        replay = lpage.get_by_role("link", name="Listen to the replay")
        await expect(replay).to_have_attribute("href", f"/spaces/{sid}/replay")
        await expect(hpage.locator("#badge")).to_have_text("Ended")
        await assert_usable(lpage)
        await screenshot(lpage, "space-ended")

        assert page_errors(hpage) == []
        assert page_errors(fpage) == []
        assert page_errors(lpage)[:listening] == []
        # Requests in flight when the audio stops may fail (the last hinted part, a
        # heartbeat): the browser logs those itself; nothing else may appear.
        assert unexpected(page_errors(lpage)[listening:], "status of 404", "status of 409") == []
    finally:
        host.post(f"/api/spaces/{sid}/end")  # 409 once the test has ended it: fine
