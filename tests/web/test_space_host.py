"""The Space page for hosts and co-hosts: what each may do, keeping up when live events
are cut off (the state poll carries on), and confirming what cannot be undone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from playwright.async_api import Route, expect

from tests.conftest import LiveServer
from tests.helpers import Person
from tests.web.conftest import LaunchBrowser, assert_usable, create_space, page_errors
from tests.web.space_helpers import member, open_space, unexpected


def bring_on_stage(host: Person, sid: str, person: Person, role: str = "speaker") -> None:
    r = host.post(
        f"/api/spaces/{sid}/invitations", json={"user_id": person.user["id"], "role": role}
    )
    assert r.status_code == 201, r.text
    r = person.post(f"/api/spaces/{sid}/invitations/me/accept")
    assert r.status_code == 204, r.text


async def test_a_cohost_runs_the_stage_without_live_events(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    """A co-host gets the speakers' controls but none over the host, cannot end the Space
    or appoint co-hosts; with the event stream cut, the queue still arrives by polling."""
    host, cohost, speaker, fan = people(), people(), people(), people()
    sid = create_space(host, title="Co-hosted")["id"]
    try:
        bring_on_stage(host, sid, cohost, "cohost")
        bring_on_stage(host, sid, speaker)
        browser = await launch_browser()
        page = await open_space(browser, media_server, sid, cohost)

        async def cut(route: Route) -> None:
            await route.abort()

        await page.route("**/api/spaces/*/events", cut)
        await expect(page.locator("#host-panel")).to_be_visible()
        await expect(page.get_by_role("button", name="End the Space")).to_be_hidden()
        await expect(member(page, host.user["id"]).locator("details.manage")).to_have_count(0)
        speaker_card = member(page, speaker.user["id"])
        await speaker_card.locator("summary").click()
        labels = await speaker_card.locator(".manage-actions button").all_inner_texts()
        assert labels == ["Mute", "Move to audience", "Remove"], labels
        assert await page.locator('#invite-role option[value="cohost"]').is_disabled()

        assert fan.post(f"/api/spaces/{sid}/requests").status_code == 201
        accept = page.get_by_role("button", name=f"Accept: {fan.user['display_name']}")
        await expect(accept).to_be_visible(timeout=3000)  # a poll or two, no push
        await accept.click()
        await expect(member(page, fan.user["id"])).to_have_attribute("data-role", "speaker")
        await expect(page.locator("#requests")).to_contain_text("Nobody is asking")
        await assert_usable(page)
        assert unexpected(page_errors(page), "net::ERR_FAILED") == []
    finally:
        host.post(f"/api/spaces/{sid}/end")


async def test_cancelling_a_scheduled_space_asks_first(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    """Cancel opens a confirmation: "Keep it" (or Escape) changes nothing; confirming
    cancels, and the page says so."""
    host = people()
    start = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    sid = create_space(host, title="Maybe not", scheduled_start=start)["id"]
    browser = await launch_browser()
    page = await open_space(browser, media_server, sid, host)
    cancel = page.get_by_role("button", name="Cancel this Space")
    dialog = page.locator("#confirm")
    await cancel.click()
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    await dialog.get_by_role("button", name="Keep it").click()
    await expect(dialog).to_be_hidden()
    await expect(cancel).to_be_focused()
    await cancel.click()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await page.wait_for_timeout(300)
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "scheduled"
    await cancel.click()
    await dialog.get_by_role("button", name="Cancel the Space").click()
    await expect(page.locator("#status")).to_have_text("This Space was cancelled.", timeout=3000)
    await expect(page.locator("#badge")).to_have_text("Cancelled")
    await expect(page.locator("#host-panel")).to_be_hidden()
    assert host.get(f"/api/spaces/{sid}").json()["state"] == "cancelled"
    assert page_errors(page) == []
