"""The Space page as a speaker: a blocked microphone, an invitation by username, muting
oneself, being moved to the audience (the server cuts the WebRTC session), leaving the
stage. Real Chromium publishing its fake microphone to the real server."""

from __future__ import annotations

from collections.abc import Callable

from playwright.async_api import expect

from tests.conftest import LiveServer
from tests.helpers import Person
from tests.web.conftest import LaunchBrowser, assert_usable, create_space, page_errors
from tests.web.space_helpers import member, moderate, open_space, playing, speaking_started

WITHIN_MS = 2000


async def test_a_blocked_microphone_is_explained(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    """When the browser refuses the microphone, the page says how to allow it, and the
    host can try again."""
    host = people()
    sid = create_space(host, title="No mic")["id"]
    try:
        browser = await launch_browser(deny_microphone=True)
        page = await open_space(browser, media_server, sid, host)
        await page.get_by_role("button", name="Join the stage").click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("blocking the microphone")
        await expect(alert).to_contain_text("set Microphone to Allow")
        assert await page.evaluate("() => window.tribune.mic.state") == "off"
        await expect(page.get_by_role("button", name="Join the stage")).to_be_enabled()
        await assert_usable(page)
        assert page_errors(page) == []
    finally:
        host.post(f"/api/spaces/{sid}/end")


async def test_an_invited_speaker_mutes_is_moved_to_the_audience_and_leaves(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    """A listener asks to speak and is turned down; invited by username from the host's
    page, they accept, speak, mute and unmute; moved to the audience, their microphone
    stops and they hear the broadcast again; invited back, they leave the stage."""
    host, fan = people(), people()
    sid = create_space(host, title="Invitations")["id"]
    fid, name = fan.user["id"], fan.user["display_name"]
    try:
        browser = await launch_browser(mic_hz=660)
        hpage = await open_space(browser, media_server, sid, host)
        fpage = await open_space(browser, media_server, sid, fan)
        await fpage.get_by_role("button", name="▶ Play").click()
        await playing(fpage)

        async def invite() -> None:
            await hpage.get_by_label("Invite someone by username").fill(fan.user["username"])
            await hpage.get_by_role("button", name="Invite", exact=True).click()
            await expect(hpage.locator("#invite-status")).to_contain_text(
                f"Invited @{fan.user['username']}"
            )
            # Listeners look for invitations every few seconds (the shared state does not
            # carry them).
            accept = fpage.get_by_role("button", name="Accept invitation")
            await expect(accept).to_be_visible(timeout=10_000)
            await accept.click()
            await expect(member(hpage, fid)).to_have_attribute("data-role", "speaker")

        # Asking to speak: a host says no, kindly; asking again, then withdrawing.
        await fpage.get_by_role("button", name="Request to speak").click()
        deny = hpage.get_by_role("button", name=f"Deny: {name}")
        await expect(deny).to_be_visible(timeout=WITHIN_MS)
        await deny.click()
        await expect(fpage.locator(".you-notice")).to_contain_text(
            "didn't bring you on stage this time", timeout=WITHIN_MS
        )
        await fpage.get_by_role("button", name="Request to speak").click()
        await expect(hpage.locator("#requests-count")).to_have_text("1", timeout=WITHIN_MS)
        await fpage.get_by_role("button", name="Withdraw my request").click()
        await expect(hpage.locator("#requests-count")).to_have_text("0", timeout=WITHIN_MS)
        await expect(hpage.locator("#requests")).to_contain_text("Nobody is asking")
        await expect(fpage.get_by_role("button", name="Request to speak")).to_be_visible()

        await invite()
        await fpage.get_by_role("button", name="Join the stage").click()
        await speaking_started(fpage)
        assert await fpage.evaluate("() => window.tribune.player.state") == "idle"
        await expect(member(hpage, fid)).to_have_attribute("data-speaking", "true", timeout=5000)

        await fpage.get_by_role("button", name="Mute", exact=True).click()
        await expect(member(hpage, fid)).to_have_attribute("data-muted", "true", timeout=WITHIN_MS)
        assert (
            await fpage.evaluate("() => window.tribune.mic.stream.getAudioTracks()[0].enabled")
            is False
        )
        await fpage.get_by_role("button", name="Unmute", exact=True).click()
        await expect(member(hpage, fid)).to_have_attribute("data-muted", "false", timeout=WITHIN_MS)
        await assert_usable(fpage)

        await moderate(hpage, name, fid, "Move to audience")
        await expect(fpage.locator(".you-notice")).to_contain_text(
            "moved you to the audience", timeout=WITHIN_MS
        )
        await expect(member(fpage, fid)).to_have_count(0)
        assert await fpage.evaluate("() => window.tribune.mic.state") == "off"
        await playing(fpage, beyond=1.0)  # back to the broadcast by itself
        await expect(fpage.get_by_role("button", name="Request to speak")).to_be_visible()

        await invite()
        await fpage.get_by_role("button", name="Join the stage").click()
        await speaking_started(fpage)
        await fpage.get_by_role("button", name="Leave the stage").click()
        await expect(member(hpage, fid)).to_have_count(0, timeout=WITHIN_MS)
        await expect(fpage.locator(".you-notice")).to_contain_text("You left the stage")
        await playing(fpage, beyond=1.0)
        assert page_errors(fpage) == []
        assert page_errors(hpage) == []
    finally:
        host.post(f"/api/spaces/{sid}/end")
