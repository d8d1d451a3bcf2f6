"""The replay page in real Chromium: play, seek, speed, clips and downloads of a Space
recorded through the real system (a WHIP speaker hums 440 Hz, then 660 Hz; the host ends
the Space), heard with a WebAudio analyser on the page and decoded with ffmpeg."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Locator, Page, Request, expect

from tests.audio import decode, tone_share, whip_publish
from tests.conftest import LiveServer
from tests.e2e.test_live_audio import api_token, speaker
from tests.helpers import Person, create_space, sign_up
from tests.web.conftest import (
    LaunchBrowser,
    assert_usable,
    new_page,
    page_errors,
    screenshot,
)

RATE = 48_000
PART = 1024 * 16 / RATE  # 0.341 s: clips are cut on part boundaries
TITLE = "Replayed in Chromium"

#: What the page's audio element plays, looked at ``looks`` times 150 ms apart: the media
#: time, the wall-clock time (ms) and the loudest frequency at each look.
LISTEN_JS = """async (looks) => {
  const audio = window.tribune.audio;
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(audio.captureStream());
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  source.connect(analyser);
  await ctx.resume();
  const bins = new Float32Array(analyser.frequencyBinCount);
  const heard = [];
  for (let look = 0; look < looks; look++) {
    await new Promise((r) => setTimeout(r, 150));
    analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    const hz = best * ctx.sampleRate / analyser.fftSize;
    heard.push({ t: audio.currentTime, w: performance.now(), hz, db: bins[best] });
  }
  await ctx.close();
  return heard;
}"""


@dataclass
class Recorded:
    """An ended Space and where each tone sits in its recording (seconds)."""

    sid: str
    host: Person
    duration: float
    low: tuple[float, float]  # 440 Hz
    high: tuple[float, float]  # 660 Hz

    def page(self, server: LiveServer, query: str = "") -> str:
        return f"{server.url}/spaces/{self.sid}/replay{query}"


def _spans(pcm: np.ndarray, freq: float) -> tuple[float, float]:
    """First and last 0.25 s window where ``freq`` carries most of the energy."""
    step = RATE // 4
    hits = [
        i * 0.25
        for i in range(len(pcm) // step)
        if tone_share(pcm[i * step : (i + 1) * step], freq) > 0.5
    ]
    assert hits, f"{freq} Hz is not in the recording"
    return hits[0], hits[-1] + 0.25


async def _speak(server: LiveServer, sid: str, token: dict[str, str]) -> None:
    for freq in (440, 660):
        pub = await whip_publish(server.url, sid, token, freq)
        await asyncio.sleep(3.5)
        await pub.close()


@pytest.fixture(scope="module")
def recorded(media_server: LiveServer) -> Iterator[Recorded]:
    """One recording for the module: 440 Hz for 3.5 s, then 660 Hz for 3.5 s."""
    host = sign_up(media_server.url)
    sid = create_space(host, title=TITLE)["id"]  # no schedule: live at once
    token = api_token(speaker(media_server, host, sid))
    asyncio.run(_speak(media_server, sid, token))
    assert host.post(f"/api/spaces/{sid}/end").status_code == 200
    pcm = decode(f"{media_server.url}/replay/{sid}/index.m3u8")
    low, high = _spans(pcm, 440), _spans(pcm, 660)
    assert low[1] - low[0] >= 2.5, (low, high)
    assert high[1] - high[0] >= 2.5, (low, high)
    assert low[1] <= high[0] + 0.25, (low, high)
    yield Recorded(sid, host, len(pcm) / RATE, low, high)
    host.close()


def mss(seconds: float) -> str:
    """How the page writes a clip's edge: m:ss, with tenths when there are some."""
    tenths = round(seconds * 10)
    text = f"{tenths // 600}:{tenths // 10 % 60:02d}"
    return f"{text}.{tenths % 10}" if tenths % 10 else text


def failed_load(status: str) -> str:
    """What Chromium logs for a response with an error status, such as "404 (Not Found)".
    Tests of error paths expect exactly these (the page asked, and showed the answer)."""
    return f"console.error: Failed to load resource: the server responded with a status of {status}"


def play_button(page: Page) -> Locator:
    return page.get_by_role("button", name="▶ Play", exact=True)


async def open_replay(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(play_button(page)).to_be_enabled(timeout=10_000)
    await page.wait_for_function(
        "() => window.tribune.hls && window.tribune.audio.readyState >= 1", timeout=10_000
    )


async def listen(page: Page, looks: int) -> list[dict[str, Any]]:
    heard: list[dict[str, Any]] = await page.evaluate(LISTEN_JS, looks)
    return heard


def heard_within(heard: list[dict[str, Any]], span: tuple[float, float]) -> list[float]:
    """The loudest frequencies heard while the media time was well inside ``span``."""
    lo, hi = span[0] + 0.4, span[1] - 0.4
    return [h["hz"] for h in heard if lo <= h["t"] <= hi and h["db"] > -70]


def is_tone(freqs: list[float], freq: float) -> bool:
    return len(freqs) >= 3 and all(abs(f - freq) < 15 for f in freqs)


async def media_time(page: Page) -> float:
    t: float = await page.evaluate("() => window.tribune.audio.currentTime")
    return t


async def test_replay_plays_seeks_and_changes_speed(
    media_server: LiveServer, recorded: Recorded, launch_browser: LaunchBrowser
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await open_replay(page, recorded.page(media_server))
    await expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    meta = page.locator("#meta")
    await expect(meta).to_contain_text(f"Hosted by {recorded.host.user['display_name']}")
    await expect(meta).to_contain_text("lasted")
    assert await meta.locator("time").get_attribute("datetime")
    seek = page.get_by_role("slider", name="Position")
    total = f"0:{int(recorded.duration):02d}"
    await expect(seek).to_have_attribute("aria-valuetext", f"0:00 of {total}")

    # Play from the start: time moves and the analyser hears 440 Hz where it was recorded.
    await play_button(page).click()
    await expect(page.get_by_role("button", name="❚❚ Pause")).to_be_visible()
    heard = await listen(page, 20)
    assert heard[-1]["t"] > heard[0]["t"] + 2.0, heard
    assert is_tone(heard_within(heard, recorded.low), 440), (recorded.low, heard)

    # Seek to the second half with the slider: 660 Hz plays there.
    await seek.fill(str(round(recorded.high[0] + 0.2)))
    heard = await listen(page, 14)
    assert is_tone(heard_within(heard, recorded.high), 660), (recorded.high, heard)
    await page.get_by_role("button", name="❚❚ Pause").click()
    shown = f"0:{int(await media_time(page)):02d} of {total}"
    await expect(seek).to_have_attribute("aria-valuetext", shown)
    await expect(page.locator("#position")).to_have_text(shown.split(" ")[0])

    # Back 15 s (to the start) and play at 2x: the media clock runs about twice as fast,
    # and the tone keeps its pitch (440 Hz, not 880).
    await page.get_by_role("button", name="Back 15 seconds").click()
    assert await media_time(page) == 0
    await page.get_by_role("radio", name="2×").check()
    await play_button(page).click()
    assert await page.evaluate("() => window.tribune.audio.playbackRate") == 2
    heard = await listen(page, 10)
    rate = (heard[-1]["t"] - heard[0]["t"]) / ((heard[-1]["w"] - heard[0]["w"]) / 1000)
    assert 1.6 < rate < 2.4, heard
    assert is_tone(heard_within(heard, recorded.low), 440), (recorded.low, heard)
    await page.get_by_role("button", name="❚❚ Pause").click()
    await page.get_by_role("radio", name="1×").check()
    assert await page.evaluate("() => window.tribune.audio.playbackRate") == 1

    # The keyboard moves the slider too: Home, then 5 s on.
    await seek.focus()
    await page.keyboard.press("Home")
    assert await media_time(page) == 0
    await page.keyboard.press("ArrowRight")
    assert await media_time(page) == 5
    await expect(seek).to_have_attribute("aria-valuetext", f"0:05 of {total}")

    await assert_usable(page)
    await screenshot(page, "replay")
    assert page_errors(page) == []


async def test_a_clip_is_made_played_shared_and_downloaded(
    media_server: LiveServer, recorded: Recorded, launch_browser: LaunchBrowser, tmp_path: Path
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await open_replay(page, recorded.page(media_server))
    start_field = page.get_by_label("Start", exact=True)
    end_field = page.get_by_label("End", exact=True)

    # "Start here" / "End here" take the player's position.
    await page.get_by_role("slider", name="Position").fill("2")
    await page.get_by_role("button", name="Start here").click()
    await expect(start_field).to_have_value("0:02")
    await page.get_by_role("slider", name="Position").fill("4")
    await page.get_by_role("button", name="End here").click()
    await expect(end_field).to_have_value("0:04")
    await expect(page.locator("#clip-length")).to_contain_text("2 seconds long")

    # Typed times: two seconds inside the 440 Hz part.
    start = round(recorded.low[0] + 0.5, 1)
    await start_field.fill(f"0:{start:04.1f}")
    await end_field.fill(f"0:{start + 2:04.1f}")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download clip (.m4a)").click()
    download = await info.value
    assert download.suggested_filename.endswith(".m4a")
    clip_file = tmp_path / "clip.m4a"
    await download.save_as(clip_file)
    clip = await asyncio.to_thread(decode, str(clip_file))
    assert abs(len(clip) / RATE - 2.0) <= PART, len(clip) / RATE
    assert tone_share(clip, 440) > 0.5
    await expect(page.get_by_role("alert").filter(has_text="clip")).to_have_count(0)

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download the whole Space (.m4a)").click()
    everything = tmp_path / "space.m4a"
    await (await info.value).save_as(everything)
    pcm = await asyncio.to_thread(decode, str(everything))
    assert abs(len(pcm) / RATE - recorded.duration) <= PART
    assert tone_share(pcm, 440) > 0.2
    assert tone_share(pcm, 660) > 0.2

    # The link to the clip opens the page with the clip selected, ready at its start.
    link = await page.get_by_label("Link to this clip").input_value()
    assert link.startswith(recorded.page(media_server, "?start="))
    assert f"end={start + 2:g}" in link
    assert page_errors(page) == []
    _, shared = await new_page(browser, phone=True)
    await open_replay(shared, link)
    await expect(shared.get_by_label("Start", exact=True)).to_have_value(mss(start))
    await expect(shared.get_by_label("End", exact=True)).to_have_value(mss(start + 2))
    await shared.wait_for_function(
        f"() => Math.abs(window.tribune.audio.currentTime - {start}) < 0.5", timeout=5_000
    )

    # Play clip loads the clip's own playlist: two seconds of 440 Hz, then it stops.
    await shared.get_by_role("button", name="▶ Play clip").click()
    await expect(shared.locator("#clip-mode")).to_contain_text(
        f"In the player: the clip {mss(start)}–{mss(start + 2)}"
    )
    await expect(shared.get_by_role("button", name="Back to the whole Space")).to_be_visible()
    assert "/clip.m3u8?start=" in await shared.evaluate("() => window.tribune.hls.url")
    await shared.wait_for_function(
        "() => !window.tribune.audio.paused && window.tribune.audio.currentTime > 0.1",
        timeout=5_000,
    )
    heard = await listen(shared, 8)
    assert [h for h in heard if h["db"] > -70], heard
    assert all(abs(h["hz"] - 440) < 15 for h in heard if h["db"] > -70), heard
    await shared.wait_for_function("() => window.tribune.audio.ended", timeout=5_000)
    clip_length = await shared.evaluate("() => window.tribune.audio.duration")
    # Whole parts: the clip's playlist may start and end up to a part (0.34 s) wider.
    assert 1.95 <= clip_length <= 2.0 + 2 * PART, clip_length
    await assert_usable(shared)
    await screenshot(shared, "replay-clip")

    # Back to the whole Space, where the clip ended.
    await shared.get_by_role("button", name="Back to the whole Space").click()
    await expect(shared.locator("#clip-mode")).to_be_hidden()
    await shared.wait_for_function(
        "() => window.tribune.hls.url.endsWith('/index.m3u8')"
        " && window.tribune.audio.readyState >= 1",
        timeout=5_000,
    )
    assert abs(await media_time(shared) - (start + 2.2)) < 0.5
    assert page_errors(shared) == []


async def test_clip_mistakes_are_explained(
    media_server: LiveServer, recorded: Recorded, launch_browser: LaunchBrowser
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await open_replay(page, recorded.page(media_server))
    asked: list[str] = []

    def note(request: Request) -> None:
        if "/clip.m3u8" in request.url or "/download.m4a" in request.url:
            asked.append(request.url)

    page.on("request", note)
    downloads: list[object] = []
    page.on("download", lambda d: downloads.append(d))
    start, end = page.get_by_label("Start", exact=True), page.get_by_label("End", exact=True)
    alert = page.locator("#clip-error")
    download = page.get_by_role("button", name="Download clip (.m4a)")

    await start.fill("0:05")
    await end.fill("0:02")
    await download.click()
    await expect(alert).to_have_text(
        "The clip has to end after it starts: it ends at 0:02, before its start at 0:05."
    )
    await expect(end).to_have_attribute("aria-invalid", "true")
    await start.fill("0:00")
    await end.fill("5:01")
    await page.get_by_role("button", name="▶ Play clip").click()
    await expect(alert).to_contain_text("at most 5 minutes long; this one is 5:01")
    await end.fill("half past")
    await download.click()
    await expect(alert).to_contain_text("“half past” is not a time")
    assert asked == []  # the page knew without asking

    # Past the end of the recording: Tribune says so (422), and nothing downloads.
    await end.fill("4:00")
    await download.click()
    await expect(alert).to_contain_text("That clip cannot be made: clip ends at 240")
    await expect(alert).to_contain_text("after the end of the recording")
    assert len(asked) == 1
    assert downloads == []
    assert await page.get_by_label("Link to this clip").input_value() != ""  # valid here
    assert page_errors(page) == [failed_load("422 (Unprocessable Entity)")]


async def test_a_space_not_over_yet_and_an_unknown_one(
    media_server: LiveServer, launch_browser: LaunchBrowser
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await page.goto(f"{media_server.url}/spaces/sp_doesnotexist/replay")
    await expect(page.get_by_role("heading", level=1)).to_have_text("No such Space")
    await expect(page.locator("#status")).to_contain_text("There is no Space at this address")
    await expect(play_button(page)).to_be_hidden()
    assert page_errors(page) == [failed_load("404 (Not Found)")]

    _, page = await new_page(browser, phone=True)
    host = sign_up(media_server.url)
    sid = create_space(host, title="Still going")["id"]
    try:
        await page.goto(f"{media_server.url}/spaces/{sid}/replay")
        await expect(page.locator("#status")).to_contain_text("live right now and not over yet")
        live = page.get_by_role("link", name="Listen live")
        assert await live.get_attribute("href") == f"/spaces/{sid}"
        await expect(play_button(page)).to_be_hidden()
        await assert_usable(page)
    finally:
        assert host.post(f"/api/spaces/{sid}/end").status_code == 200
    # The page notices the end by itself and opens the replay.
    await expect(play_button(page)).to_be_enabled(timeout=12_000)
    await expect(page.locator("#status")).to_be_hidden()
    assert page_errors(page) == []


async def test_replays_that_cannot_be_heard_say_why(
    server: LiveServer,
    media_server: LiveServer,
    launch_browser: LaunchBrowser,
) -> None:
    browser = await launch_browser()
    # Nothing was recorded (a worker without media): the page says so.
    host = sign_up(server.url)
    sid = create_space(host, title="Unrecorded")["id"]
    assert host.post(f"/api/spaces/{sid}/end").status_code == 200
    _, page = await new_page(browser)
    await page.goto(f"{server.url}/spaces/{sid}/replay")
    await expect(page.locator("#status")).to_contain_text("ended without a recording")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Unrecorded")
    await expect(play_button(page)).to_be_hidden()
    assert page_errors(page) == [failed_load("404 (Not Found)")]

    # A Space for signed-in listeners only: a visitor is asked to log in.
    host = sign_up(media_server.url)
    sid = create_space(host, title="Members only", allow_guests=False)["id"]
    assert host.post(f"/api/spaces/{sid}/end").status_code == 200
    _, page = await new_page(browser)
    await page.goto(f"{media_server.url}/spaces/{sid}/replay")
    await expect(page.locator("#status")).to_contain_text("for people with an account")
    login = page.get_by_role("link", name="Log in to listen")
    assert await login.get_attribute("href") == f"/login?next=%2Fspaces%2F{sid}%2Freplay"
    assert page_errors(page) == [failed_load("401 (Unauthorized)")]
