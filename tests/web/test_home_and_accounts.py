"""Home, sign up, log in and new Space, in Debian's Chromium against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import LiveServer
from tests.helpers import Person, bearer, create_space, join, unique_name
from tests.web.conftest import (
    LaunchBrowser,
    assert_usable,
    log_in_page,
    new_page,
    page_errors,
    screenshot,
    track_errors,
)

PASSWORD = "pa55word-long"  # what tests.helpers.sign_up gives people
ZONE = "America/New_York"
WAIT_MS = 10_000
#: the home page refreshes "Live now" every 5 s: two rounds and some slack
LIVE_WAIT_MS = 13_000


async def zoned_page(browser: Browser, timezone_id: str) -> tuple[BrowserContext, Page]:
    return await new_page(browser, timezone_id=timezone_id, locale="en-US")


class Departure:
    """The page's errors as they stood when it navigated away: what our page did, not
    what the page it went to (another engineer's) does after."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] | None = None
        self._page = page
        page.on("framenavigated", self._navigated)

    def _navigated(self, frame: object) -> None:
        if frame is self._page.main_frame and self.errors is None:
            self.errors = page_errors(self._page)


FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
#: what the header's GET /api/me answers a visitor who is not signed in
SIGNED_OUT = 401


def unexpected(errors: list[str] | None, *statuses: int) -> list[str]:
    """``errors`` less Chromium's own log lines for HTTP errors this step expects and the
    page handled (Chromium logs every 4xx response as "Failed to load resource", whatever
    the page does with it). Anything else (a script error, console.error, an unexpected
    status) stays."""
    assert errors is not None, "the page did not navigate"
    return [e for e in errors if not ((m := FAILED_LOAD.search(e)) and int(m.group(1)) in statuses)]


def plain(text: str) -> str:
    """Text with ICU's narrow and non-breaking spaces as plain spaces."""
    return re.sub(r"[\u202f\u00a0\s]+", " ", text).strip()


def clock(moment: datetime) -> str:
    """``moment`` as en-US writes a time of day: "3:30 PM"."""
    return f"{moment.hour % 12 or 12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"


async def sign_up_through_form(page: Page, username: str, display_name: str) -> None:
    await page.fill("#username", username)
    await page.fill("#display_name", display_name)
    await page.fill("#password", PASSWORD)
    await page.click('button[type="submit"]')


async def log_in_through_form(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click('button[type="submit"]')


# -- 1. sign up, log out, log in ------------------------------------------------------------


async def test_sign_up_log_out_and_log_in_through_the_forms(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    base = media_server.url
    browser = await launch_browser()
    _, page = await new_page(browser)
    username = unique_name("ada")
    shown = "Ada Lovelace"
    nav = page.locator("#site-header nav")

    # A new visitor finds "Sign up" in the header of the home page; empty lists say so.
    with media_server.client() as client:
        live_now = client.get("/api/spaces?state=live").json()["spaces"]
    await page.goto(f"{base}/")
    if live_now:
        await expect(page.locator("#live .card")).to_have_count(len(live_now))
    else:
        await expect(page.locator("#live")).to_have_text("Nobody is live right now.")
    await expect(page.locator("#start")).to_contain_text("Sign up to host a Space")
    await nav.get_by_role("link", name="Sign up").click()
    await page.wait_for_url(f"{base}/signup?next=%2F")
    await expect(page.locator("#username")).to_have_attribute("autocomplete", "username")
    await expect(page.locator("#password")).to_have_attribute("autocomplete", "new-password")
    await assert_usable(page)
    await screenshot(page, "signup")

    # Hints in words before anything is sent.
    await page.fill("#username", "no spaces allowed")
    await page.fill("#password", "short")
    await page.click('button[type="submit"]')
    await expect(page.locator("#username-error")).to_contain_text("letters, digits or underscores")
    await expect(page.locator("#password-error")).to_contain_text("at least 8 characters")
    await expect(page.locator("#username")).to_be_focused()
    await expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    assert page.url == f"{base}/signup?next=%2F"

    await sign_up_through_form(page, username, shown)
    await page.wait_for_url(f"{base}/")
    await expect(nav).to_contain_text(shown)
    await expect(
        page.locator("#start").get_by_role("link", name="Start a Space")
    ).to_have_attribute("href", "/new")

    await nav.get_by_role("button", name="Log out").click()
    await expect(nav.get_by_role("link", name="Log in")).to_be_visible(timeout=WAIT_MS)
    await expect(nav).not_to_contain_text(shown)

    await nav.get_by_role("link", name="Log in").click()
    await page.wait_for_url(f"{base}/login?next=%2F")
    await expect(page.locator("#password")).to_have_attribute("autocomplete", "current-password")
    await assert_usable(page)
    await screenshot(page, "login")

    # A wrong password: the server's words, next to the form, and we stay.
    await log_in_through_form(page, username, "not-the-password")
    alert = page.locator("#form-error")
    await expect(alert).to_have_text("Username or password is wrong.", timeout=WAIT_MS)
    await expect(alert).to_have_attribute("role", "alert")
    assert page.url == f"{base}/login?next=%2F"

    await log_in_through_form(page, username)
    await page.wait_for_url(f"{base}/")
    await expect(nav).to_contain_text(shown)
    assert unexpected(page_errors(page), SIGNED_OUT) == []  # 401 also: the wrong password

    # Someone else wants the same username: the server says it is taken.
    other_context, other = await new_page(browser)
    await other.goto(f"{base}/signup")
    await sign_up_through_form(other, username, "Another Ada")
    await expect(other.locator("#form-error")).to_contain_text(
        f"The username '{username}' is taken", timeout=WAIT_MS
    )
    await expect(other.locator("#username")).to_have_attribute("aria-invalid", "true")
    assert other.url == f"{base}/signup"

    # ?next= leads back only to paths on this site.
    await other.goto(f"{base}/login?next=//evil.example/phish")
    await log_in_through_form(other, username)
    await other.wait_for_url(f"{base}/")
    await other_context.clear_cookies()
    await other.goto(f"{base}/login?next=%2Fnew")
    await log_in_through_form(other, username)
    await other.wait_for_url(f"{base}/new")
    await expect(other.locator("#space-form")).to_be_visible()
    assert unexpected(page_errors(other), SIGNED_OUT, 409) == []

    # Too many log-in attempts: the 429's detail, and when to try again.
    victim = people()
    with media_server.client() as client:
        for _ in range(media_server.settings.login_attempts_per_minute):
            wrong = {"username": victim.user["username"], "password": "wrong-password"}
            assert client.post("/api/session", json=wrong).status_code == 401
    _, third = await new_page(browser)
    await third.goto(f"{base}/login")
    await log_in_through_form(third, victim.user["username"])
    await expect(third.locator("#form-error")).to_contain_text(
        "Too many log-in attempts for this username", timeout=WAIT_MS
    )
    await expect(third.locator("#form-error")).to_contain_text(re.compile(r"try again in \d+ s"))
    assert third.url == f"{base}/login"
    assert unexpected(page_errors(third), SIGNED_OUT, 429) == []


# -- 2. create and schedule through /new; upcoming and "remind me" on home --------------------


async def test_create_and_schedule_spaces_then_remind_me(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    base = media_server.url
    person = people()
    browser = await launch_browser()
    _, page = await zoned_page(browser, ZONE)
    zone = ZoneInfo(ZONE)
    made: list[str] = []
    try:
        # Not signed in: a clear way to log in, which comes back here.
        await page.goto(f"{base}/new")
        gate = page.locator("#gate")
        await expect(gate).to_contain_text("You need to be logged in")
        await expect(page.locator("#space-form")).to_be_hidden()
        await assert_usable(page)
        await gate.get_by_role("link", name="Log in").click()
        await page.wait_for_url(f"{base}/login?next=%2Fnew")
        await log_in_through_form(page, person.user["username"])
        await page.wait_for_url(f"{base}/new")
        await expect(page.locator("#space-form")).to_be_visible()
        await assert_usable(page)
        await screenshot(page, "new")

        # A title is needed; said before anything is sent.
        await page.click("#submit")
        await expect(page.locator("#title-error")).to_have_text("Give your Space a title.")
        await expect(page.locator("#title")).to_be_focused()

        # Start now: lands on the Space, which is live and hosted by this person.
        await page.fill("#title", "Morning show")
        await page.fill("#description", "Coffee and the news")
        await page.uncheck("#allow_guests")
        await expect(page.locator("#submit")).to_have_text("Start the Space")
        left = Departure(page)
        await page.click("#submit")
        await page.wait_for_url(re.compile(r"/spaces/[\w-]+$"), timeout=WAIT_MS)
        live_id = page.url.rsplit("/", 1)[1]
        made.append(live_id)
        assert unexpected(left.errors, SIGNED_OUT) == []
        live = person.get(f"/api/spaces/{live_id}").json()
        assert (live["state"], live["title"], live["description"]) == (
            "live",
            "Morning show",
            "Coffee and the news",
        )
        assert live["allow_guests"] is False
        assert live["host"]["user_id"] == person.user["id"]

        # Schedule: the API's refusals are shown in words, in this viewer's zone.
        _, page = await zoned_page(browser, ZONE)
        await log_in_page(page.context, media_server, person)
        await page.goto(f"{base}/new")
        await page.fill("#title", "Tomorrow's show")
        await page.check('input[name="when"][value="later"]')
        await expect(page.locator("#start")).to_be_visible()
        await expect(page.locator("#start-hint")).to_contain_text(ZONE)
        await expect(page.locator("#submit")).to_have_text("Schedule the Space")
        today = datetime.now(zone).date()
        alert = page.locator("#form-error")
        await page.fill("#start", f"{today + timedelta(days=20)}T10:00")
        await page.click("#submit")
        await expect(alert).to_contain_text("more than 14 days ahead", timeout=WAIT_MS)
        await expect(alert).not_to_contain_text("scheduled_start")
        await page.fill("#start", f"{today - timedelta(days=1)}T10:00")
        await page.click("#submit")
        await expect(alert).to_contain_text("in the past", timeout=WAIT_MS)
        assert "/new" in page.url

        tomorrow = today + timedelta(days=1)
        starts = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 15, 30, tzinfo=zone)
        await page.fill("#start", f"{tomorrow}T15:30")
        left = Departure(page)
        await page.click("#submit")
        await page.wait_for_url(re.compile(r"/spaces/[\w-]+$"), timeout=WAIT_MS)
        soon_id = page.url.rsplit("/", 1)[1]
        made.append(soon_id)
        assert unexpected(left.errors, 422) == []  # the two refused schedules
        soon = person.get(f"/api/spaces/{soon_id}").json()
        assert soon["state"] == "scheduled"
        assert datetime.fromisoformat(soon["scheduled_start"]) == starts.astimezone(UTC)

        # Home lists it under Upcoming, at the time this viewer's zone gives.
        home = track_errors(await page.context.new_page())
        await home.goto(f"{base}/")
        card = home.locator(f'#upcoming [data-space-id="{soon_id}"]')
        await expect(card).to_contain_text("Tomorrow's show", timeout=WAIT_MS)
        await expect(card).to_contain_text("Your Space")
        shown = plain(await card.locator("time").inner_text())
        for part in (f"{starts:%a}", f"{starts:%b} {starts.day}", clock(starts), starts.tzname()):
            assert part in shown, (part, shown)
        assert datetime.fromisoformat(
            await card.locator("time").get_attribute("datetime") or ""
        ) == starts.astimezone(UTC)
        await expect(
            home.locator("#start").get_by_role("link", name="Start a Space")
        ).to_be_visible()

        # "Remind me" toggles, and the API agrees each time.
        remind = card.get_by_role("button", name="Remind me")
        await expect(remind).to_have_attribute("aria-pressed", "false")
        await remind.click()
        await expect(remind).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
        await expect(card).to_contain_text("1 person will be reminded")
        got = person.get(f"/api/spaces/{soon_id}").json()
        assert (got["viewer"]["reminded"], got["reminders"]) == (True, 1)
        await remind.press("Enter")  # by keyboard too
        await expect(remind).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)
        got = person.get(f"/api/spaces/{soon_id}").json()
        assert (got["viewer"]["reminded"], got["reminders"]) == (False, 0)
        # A reload shows what the server holds.
        await remind.click()
        await expect(remind).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
        await home.reload()
        await expect(
            home.locator(f'#upcoming [data-space-id="{soon_id}"]').get_by_role(
                "button", name="Remind me"
            )
        ).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
        await assert_usable(home)
        assert page_errors(home) == []

        # Someone not signed in is offered a log-in instead.
        _, guest = await zoned_page(browser, ZONE)
        await guest.goto(f"{base}/")
        guest_card = guest.locator(f'#upcoming [data-space-id="{soon_id}"]')
        await expect(guest_card.get_by_role("link", name="Log in to get a reminder")).to_be_visible(
            timeout=WAIT_MS
        )
        await expect(guest_card.get_by_role("button")).to_have_count(0)
        await expect(guest_card).to_contain_text("1 person will be reminded")
        assert unexpected(page_errors(guest), SIGNED_OUT) == []
    finally:
        for space_id in made:
            state = person.get(f"/api/spaces/{space_id}").json()["state"]
            if state == "live":
                person.post(f"/api/spaces/{space_id}/end")
            elif state == "scheduled":
                person.post(f"/api/spaces/{space_id}/cancel")


# -- 3. live now, with a count that moves; recordings ------------------------------------------


async def test_live_now_counts_listeners_and_recordings_link_to_replay(
    media_server: LiveServer, launch_browser: LaunchBrowser, people: Callable[[], Person]
) -> None:
    base = media_server.url
    host, speaker, viewer = people(), people(), people()
    space = create_space(host, title="Jazz at night", description="Standards, mostly")
    sid = space["id"]
    upcoming = create_space(
        host,
        title="Sunday brunch",
        scheduled_start=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
    )
    browser = await launch_browser()
    try:
        r = host.post(
            f"/api/spaces/{sid}/invitations",
            json={"username": speaker.user["username"], "role": "speaker"},
        )
        assert r.status_code == 201, r.text
        assert speaker.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204

        context, page = await new_page(browser)
        await log_in_page(context, media_server, viewer)
        await page.goto(f"{base}/")
        card = page.locator(f'#live [data-space-id="{sid}"]')
        count = card.locator(".count")
        await expect(card.get_by_role("link", name="Jazz at night")).to_have_attribute(
            "href", f"/spaces/{sid}"
        )
        await expect(card).to_contain_text(f"Hosted by {host.user['display_name']}")
        await expect(card).to_contain_text(f"On stage with {speaker.user['display_name']}")
        await expect(count).to_have_text("0")
        before = await card.bounding_box()
        title_before = await card.locator(".space-title").bounding_box()

        # Guests join and keep listening; the count follows without a reload.
        with media_server.client() as guests:
            first = join(guests, sid)
            await expect(count).to_have_text("1", timeout=LIVE_WAIT_MS)
            second = join(guests, sid)
            for listener in (first, second):
                beat = guests.post(
                    f"/api/spaces/{sid}/heartbeat", headers=bearer(listener["listener_token"])
                )
                assert beat.status_code == 200, beat.text
            await expect(count).to_have_text("2", timeout=LIVE_WAIT_MS)
        # ...and nothing on the card moved when it changed.
        assert await card.bounding_box() == before
        assert await card.locator(".space-title").bounding_box() == title_before
        await expect(page.locator(f'#upcoming [data-space-id="{upcoming["id"]}"]')).to_be_visible()
        await assert_usable(page)
        await screenshot(page, "home")

        # The host ends it: it leaves "Live now" by itself, and its recording is listed.
        assert host.post(f"/api/spaces/{sid}/end").status_code == 200
        await expect(card).to_have_count(0, timeout=LIVE_WAIT_MS)
        await page.reload()
        recording = page.locator(f'#recordings [data-space-id="{sid}"]')
        await expect(recording).to_contain_text("Jazz at night", timeout=WAIT_MS)
        play = recording.get_by_role("link", name="Play the recording of Jazz at night")
        await expect(play).to_have_attribute("href", f"/spaces/{sid}/replay")
        await expect(
            recording.get_by_role("link", name="Jazz at night", exact=True)
        ).to_have_attribute("href", f"/spaces/{sid}")
        await expect(recording).to_contain_text(f"Hosted by {host.user['display_name']}")
        await expect(recording).to_contain_text("2 listened")
        await assert_usable(page)
        assert page_errors(page) == []
    finally:
        host.post(f"/api/spaces/{sid}/end")
        host.post(f"/api/spaces/{upcoming['id']}/cancel")


async def test_home_says_when_tribune_cannot_be_reached(
    media_server: LiveServer, launch_browser: LaunchBrowser
) -> None:
    """A page that cannot reach the API says so instead of failing in the console."""
    browser = await launch_browser()
    context, page = await new_page(browser)
    await page.goto(f"{media_server.url}/")
    await expect(page.locator("#live")).not_to_contain_text("Loading", timeout=WAIT_MS)
    # Tribune goes away (the route is cut): the next refresh says so, in words.
    await context.route("**/api/spaces?state=live*", lambda route: route.abort())
    alert = page.locator("#home-error")
    await expect(alert).to_contain_text("Live Spaces could not be updated", timeout=LIVE_WAIT_MS)
    await expect(alert).to_contain_text("Tribune cannot be reached")
    # ...and clears once it is back.
    await context.unroute("**/api/spaces?state=live*")
    await expect(alert).to_be_empty(timeout=LIVE_WAIT_MS)
    cut = "Failed to load resource: net::ERR_FAILED"  # the request we aborted
    assert unexpected([e for e in page_errors(page) if cut not in e], SIGNED_OUT) == []


async def test_next_only_leads_to_paths_on_this_site(
    media_server: LiveServer, launch_browser: LaunchBrowser
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await page.goto(f"{media_server.url}/login")
    cases = {
        "?next=/new": "/new",
        "?next=%2Fspaces%2Fsp_1%3Fx%3D1": "/spaces/sp_1?x=1",
        "": "/",
        "?next=": "/",
        "?next=//evil.example/x": "/",
        "?next=/\\evil.example": "/",
        "?next=https://evil.example/": "/",
        "?next=javascript:alert(1)": "/",
        "?next=/%0A/evil.example": "/",
        "?next=/login?next=/x": "/",
        "?next=%09/evil.example": "/",
    }
    got = await page.evaluate(
        """async (cases) => {
            const { nextPath } = await import("/static/account.js");
            return Object.fromEntries(cases.map((search) => [search, nextPath(search)]));
        }""",
        list(cases),
    )
    assert got == cases
    assert unexpected(page_errors(page), SIGNED_OUT) == []
