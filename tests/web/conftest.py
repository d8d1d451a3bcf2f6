"""The web client in real Chromium (Debian's, driven by Playwright).

Each browser process gets its own fake microphone: a WAV of a tone the test chooses, so
several people on one Space can be told apart by pitch. Pages run under the app's real
Content-Security-Policy: in ``wait_for_function`` pass a function (``"() => ..."``), not
an expression (Playwright evaluates expressions with eval, which the CSP forbids).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.audio import Publisher, whip_publish
from tests.conftest import LiveServer
from tests.helpers import Person, create_space, sign_up

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def write_tone_wav(path: Path, freq: float, seconds: float = 60.0) -> Path:
    """A mono 48 kHz WAV: a sine at ``freq`` Hz (0 for silence) at -8 dBFS."""
    t = np.arange(int(48_000 * seconds)) / 48_000
    pcm = (0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(pcm.tobytes())
    return path


LaunchBrowser = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def launch_browser(tmp_path: Path) -> AsyncIterator[LaunchBrowser]:
    """``await launch_browser(mic_hz=440, deny_microphone=False)``: a Chromium whose fake
    microphone plays that tone. All are closed after the test."""
    browsers: list[Browser] = []
    async with async_playwright() as p:

        async def launch(mic_hz: float = 440.0, *, deny_microphone: bool = False) -> Browser:
            wav = write_tone_wav(tmp_path / f"mic-{len(browsers)}.wav", mic_hz)
            flags = [f for f in FLAGS if not (deny_microphone and "fake-ui" in f)]
            if deny_microphone:
                flags.append("--deny-permission-prompts")
            browser = await p.chromium.launch(
                executable_path=CHROMIUM,
                args=[*flags, f"--use-file-for-fake-audio-capture={wav}"],
            )
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


async def new_page(
    browser: Browser, *, phone: bool = False, **context_options: Any
) -> tuple[BrowserContext, Page]:
    """A fresh context (its own cookies: its own person; ``context_options`` as Playwright
    takes them, e.g. ``timezone_id``) and a page in it whose errors are recorded (see
    ``track_errors`` and ``page_errors``)."""
    context = await browser.new_context(viewport=PHONE if phone else DESKTOP, **context_options)
    page = await context.new_page()
    track_errors(page)
    return context, page


def track_errors(page: Page) -> Page:
    """Record the page's uncaught errors and console errors (for ``page_errors``); for a
    second page of a context, call it yourself. Returns the page."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    return page


def page_errors(page: Page) -> list[str]:
    """What went wrong in the page so far (uncaught errors, console.error)."""
    return list(page.errors)  # type: ignore[attr-defined]


async def screenshot(page: Page, name: str) -> None:
    """Save ``name``-desktop.png and ``name``-phone.png (375 px wide) under
    test-artifacts/screenshots, restoring the page's viewport after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or DESKTOP
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        await page.wait_for_timeout(150)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(size)


async def assert_usable(page: Page) -> None:
    """Every control has an accessible name, and nothing is wider than a 375 px phone."""
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, a[href], input, select, textarea')]
            .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
            .filter((el) => {
              const named = (el.getAttribute('aria-label') || '').trim()
                || (el.labels && [...el.labels].some((l) => l.textContent.trim()))
                || (el.getAttribute('title') || '').trim()
                || (el.textContent || '').trim()
                || (el.getAttribute('aria-labelledby') || '');
              return !named;
            })
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == [], unnamed
    size = page.viewport_size or DESKTOP
    await page.set_viewport_size(PHONE)
    await page.wait_for_timeout(150)
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    await page.set_viewport_size(size)
    assert overflow <= 0, f"the page is {overflow} px wider than a 375 px screen"


@pytest.fixture
def people(media_server: LiveServer) -> Callable[[], Person]:
    """Accounts made through the API (for the parts of a journey a test is not about)."""
    return lambda: sign_up(media_server.url)


async def log_in_page(context: BrowserContext, server: LiveServer, person: Person) -> None:
    """Give a browser context ``person``'s session: the cookies their sign-up set."""
    await context.add_cookies(
        [{"name": c.name, "value": c.value or "", "url": server.url} for c in person.cookies.jar]
    )


__all__ = [
    "ARTIFACTS",
    "DESKTOP",
    "PHONE",
    "assert_usable",
    "create_space",
    "log_in_page",
    "new_page",
    "page_errors",
    "screenshot",
]


# -- a live Space with a speaking host (used by the listener and stream player tests) --


def api_token(person: Person) -> dict[str, str]:
    r = person.post("/api/tokens", json={"name": "speaker"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
async def on_air(
    media_server: LiveServer, people: Callable[[], Person]
) -> AsyncIterator[Callable[..., object]]:
    """``await on_air(title)``: (host, Space id, publisher) of a live Space whose host hums
    440 Hz (an aiortc peer; set ``tone(publisher).freq`` to change the note)."""
    started: list[tuple[Person, str, Publisher]] = []

    async def make(title: str = "On air") -> tuple[Person, str, Publisher]:
        host = people()
        sid = create_space(host, title=title)["id"]
        pub = await whip_publish(media_server.url, sid, api_token(host), 440)
        started.append((host, sid, pub))
        return host, sid, pub

    yield make
    for host, sid, pub in started:
        await pub.close()
        host.post(f"/api/spaces/{sid}/end")
