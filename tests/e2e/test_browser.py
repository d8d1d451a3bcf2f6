"""Real Chromium on both ends: hls.js playing the live Space, and a browser speaker
publishing its (fake, WAV-fed) microphone over WHIP — a WebRTC stack that is not aiortc."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.audio import listen_live, tone_share, whip_publish
from tests.conftest import LiveServer
from tests.e2e.test_live_audio import api_token, speaker
from tests.helpers import join
from tests.web.conftest import CHROMIUM, FLAGS, write_tone_wav


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    wav = write_tone_wav(tmp_path / "mic.wav", 550)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            yield browser
        finally:
            await browser.close()


PEAK_JS = """async () => {
  const ctx = new AudioContext();
  // captureStream taps what the element plays without rerouting its output.
  const source = ctx.createMediaStreamSource(window.tribune.audio.captureStream());
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  await ctx.resume();
  // Several looks over three seconds: the loudest one says what is playing.
  let loudest = { hz: 0, db: -Infinity, state: ctx.state };
  const bins = new Float32Array(analyser.frequencyBinCount);
  for (let look = 0; look < 20; look++) {
    await new Promise((r) => setTimeout(r, 150));
    analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] > loudest.db) {
      loudest = { hz: best * ctx.sampleRate / analyser.fftSize, db: bins[best], state: ctx.state };
    }
  }
  return loudest;
}"""


async def test_hls_js_in_chromium_plays_the_live_space(
    media_server: LiveServer, live_space, chromium: Browser
):
    """A listener presses Play; hls.js (low-latency mode) plays and the tone is 440 Hz.

    The page prefers the stream (/listen/); an edge without it answers 404, and then the
    player uses hls.js, which is what this test is about (tests/web covers the stream)."""
    host, sid = live_space(title="Browser listening")
    pub = await whip_publish(
        media_server.url, sid, api_token(speaker(media_server, host, sid)), 440
    )
    try:
        page = await chromium.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        no_stream = '{"type":"urn:tribune:problem:not-found","title":"Not found","status":404}'
        await page.route(
            "**/listen/**",
            lambda route: route.fulfill(
                status=404, content_type="application/problem+json", body=no_stream
            ),
        )
        await page.goto(f"{media_server.url}/spaces/{sid}")
        await page.get_by_role("button", name="▶ Play").click()
        await page.wait_for_function("() => window.tribune.audio.currentTime > 1.0", timeout=15_000)
        start = await page.evaluate("window.tribune.audio.currentTime")
        peak = await page.evaluate(PEAK_JS)
        assert abs(peak["hz"] - 440) < 15, peak
        # Playback goes on (a stall under load is allowed to recover, not to stop it).
        await page.wait_for_function(
            f"() => window.tribune.audio.currentTime > {start} + 1.0", timeout=15_000
        )
        assert await page.evaluate("window.tribune.player.delivery") == "hls"
        assert await page.evaluate("window.tribune.hls.lowLatencyMode") is True
        assert errors == []
    finally:
        await pub.close()


async def speaker_page(
    server: LiveServer, live_space, chromium: Browser, title: str
) -> tuple[str, str, Page]:
    """A live Space, a speaker's API token for it, and a page of the app to publish from."""
    host, sid = live_space(title=title)
    token = api_token(speaker(server, host, sid))["Authorization"].removeprefix("Bearer ")
    page = await chromium.new_page()
    await page.goto(f"{server.url}/")
    return sid, token, page


async def test_chromium_speaker_publishes_over_whip(
    media_server: LiveServer, live_space, chromium: Browser
):
    """Chromium's WebRTC publishes its microphone; ffmpeg hears 550 Hz in the program."""
    sid, token, page = await speaker_page(media_server, live_space, chromium, "Browser speaking")
    published = await page.evaluate(
        """async ([url, token]) => {
            const { publish } = await import('/static/whip.js');
            const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
            window.session = await publish(url, { stream, token });
            return { location: window.session.location };
        }""",
        [f"{media_server.url}/api/spaces/{sid}/whip", token],
    )
    assert f"/api/spaces/{sid}/whip/" in published["location"]
    await page.wait_for_function(
        "() => window.session.pc.connectionState === 'connected'", timeout=15_000
    )
    connected = time.time()
    with media_server.client() as anon:
        playlist = join(anon, sid)["urls"]["playlist"]
    heard = await listen_live(media_server.url, playlist, since=connected, seconds=3.0)
    assert tone_share(heard, 550) > 0.3
    # The browser got its return track (mix-minus) on the same connection.
    assert await page.evaluate("window.session.remote.getAudioTracks().length") == 1
    started = time.monotonic()
    await page.evaluate("window.session.stop()")
    assert time.monotonic() - started < 5


async def test_a_silent_chromium_speaker_stops_sending_dtx(
    media_server: LiveServer, live_space, chromium: Browser
):
    """The answer asks for Opus DTX (usedtx=1): Chromium then sends a few packets a second
    while its microphone is silent, not 50 (the stage's receive work follows who talks)."""
    sid, token, page = await speaker_page(media_server, live_space, chromium, "Silent browser")
    rates = await page.evaluate(
        """async ([url, token]) => {
            const { publish } = await import('/static/whip.js');
            const ctx = new AudioContext();
            const silent = ctx.createMediaStreamDestination();  // digital silence
            const tone = ctx.createOscillator();
            const gain = ctx.createGain();
            tone.connect(gain).connect(silent);
            gain.gain.value = 0;
            tone.start();
            await ctx.resume();
            const session = await publish(url, { stream: silent.stream, token });
            while (session.pc.connectionState !== 'connected') {
                await new Promise((r) => setTimeout(r, 50));
            }
            const sent = async () => {
                const stats = await session.pc.getStats();
                for (const s of stats.values()) {
                    if (s.type === 'outbound-rtp' && s.kind === 'audio') return s.packetsSent;
                }
                return 0;
            };
            const rate = async () => {
                const before = await sent();
                await new Promise((r) => setTimeout(r, 2000));
                return ((await sent()) - before) / 2;
            };
            await new Promise((r) => setTimeout(r, 1500));
            const quiet = await rate();
            gain.gain.value = 0.3;  // the speaker talks
            await new Promise((r) => setTimeout(r, 500));
            const talking = await rate();
            await session.stop();
            return { quiet, talking, answer: session.pc.remoteDescription.sdp };
        }""",
        [f"{media_server.url}/api/spaces/{sid}/whip", token],
    )
    print(f"\npackets/s from Chromium: silent {rates['quiet']}, talking {rates['talking']}")
    assert "usedtx=1" in rates["answer"]
    assert rates["talking"] >= 40, rates  # 20 ms packets while there is sound
    assert rates["quiet"] <= 10, rates
