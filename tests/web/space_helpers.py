"""Helpers for the Space page's browser tests (no tests in here).

The tone checks run a WebAudio analyser inside the page, on what the page plays: the
player's <audio> (tapped with captureStream, so playback is not rerouted) or, for a
speaker, the mix-minus stream the stage sends back over WebRTC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from playwright.async_api import Browser, Page

from tests.conftest import LiveServer
from tests.helpers import Person
from tests.web.conftest import log_in_page, new_page

#: Listen to ``source`` ("player" or "stage") for up to ``seconds``; report the loudest
#: level (dB) found near each of ``freqs`` and anywhere (``peak``), and when ``want`` was
#: first heard: within 15 dB of the loudest sound at that moment and clearly above silence
#: (ms after the call; then stop at once if ``stopWhenFound``). Relative, because the
#: browser's voice processing (noise suppression, gain control) turns a steady tone down
#: over time by an amount that depends on the machine's load.
TONES_JS = """async ({ source, freqs, want, seconds, stopWhenFound }) => {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const tap = () => source === "stage"
    ? window.tribune.mic.remote
    : window.tribune.audio.captureStream();
  let stream = null;
  while (performance.now() < deadline) {
    stream = tap();
    if (stream && stream.getAudioTracks().length) break;
    await sleep(50);
  }
  if (!stream || !stream.getAudioTracks().length) {
    return { error: "nothing is playing", found: null, levels: {}, peak: -200 };
  }
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(stream).connect(analyser);
  await ctx.resume();
  const bins = new Float32Array(analyser.frequencyBinCount);
  const binHz = ctx.sampleRate / analyser.fftSize;
  const levels = Object.fromEntries(freqs.map((f) => [String(f), -200]));
  const near = (f) => {
    const center = Math.round(f / binHz);
    let best = -200;
    for (let i = center - 2; i <= center + 2; i++) {
      if (Number.isFinite(bins[i])) best = Math.max(best, bins[i]);
    }
    return best;
  };
  let found = null;
  let peak = -200;
  let looks = 0;
  while (performance.now() < deadline) {
    await sleep(100);
    analyser.getFloatFrequencyData(bins);
    looks += 1;
    let loudest = -200;
    for (let i = 5; i < bins.length; i++) {
      if (Number.isFinite(bins[i])) loudest = Math.max(loudest, bins[i]);
    }
    peak = Math.max(peak, loudest);
    for (const f of freqs) levels[String(f)] = Math.max(levels[String(f)], near(f));
    if (want && found === null) {
      const level = near(want);
      if (level > -85 && level >= loudest - 15) {
        found = Math.round(performance.now() - started);
        if (stopWhenFound) break;
      }
    }
  }
  await ctx.close();
  return { levels, peak, found, looks };
}"""


async def tones(
    page: Page,
    freqs: list[int],
    *,
    source: str = "player",
    want: int | None = None,
    seconds: float = 3.0,
    stop_when_found: bool = False,
) -> dict[str, Any]:
    """Levels (dB) near each frequency in what ``page`` plays; see ``TONES_JS``."""
    result: dict[str, Any] = await page.evaluate(
        TONES_JS,
        {
            "source": source,
            "freqs": freqs,
            "want": want,
            "seconds": seconds,
            "stopWhenFound": stop_when_found,
        },
    )
    result["levels"] = {int(k): v for k, v in result["levels"].items()}
    return result


async def open_space(
    browser: Browser,
    server: LiveServer,
    sid: str,
    person: Person | None = None,
    *,
    phone: bool = False,
    **context_options: Any,
) -> Page:
    """A new context (signed in as ``person``, else a guest; ``context_options`` as
    Playwright takes them) on the Space's page, once the page knows the room and who is
    looking."""
    context, page = await new_page(browser, phone=phone, **context_options)
    if person is not None:
        await log_in_page(context, server, person)
    await page.goto(f"{server.url}/spaces/{sid}")
    await page.wait_for_function("() => window.tribune && window.tribune.ready", timeout=10_000)
    return page


def member(page: Page, user_id: str) -> Any:
    """The stage card of ``user_id`` on ``page``."""
    return page.locator(f'#stage li[data-user-id="{user_id}"]')


async def moderate(page: Page, name: str, user_id: str, action: str) -> None:
    """As a host on ``page``: open the person's Manage menu and press ``action``."""
    card = member(page, user_id)
    details = card.locator("details.manage")
    if not await details.evaluate("(d) => d.open"):
        await card.locator("summary").click()
    await card.get_by_role("button", name=f"{action}: {name}", exact=True).click()


async def speaking_started(page: Page, timeout_ms: int = 15_000) -> None:
    """Wait until the page's microphone is connected to the stage."""
    await page.wait_for_function(
        """() => window.tribune.mic.state === "on"
            && window.tribune.mic.session
            && window.tribune.mic.session.pc.connectionState === "connected" """,
        timeout=timeout_ms,
    )


async def playing(page: Page, beyond: float = 0.5, timeout_ms: int = 10_000) -> float:
    """Wait until the page's player has advanced ``beyond`` seconds from now; its time."""
    start = await page.evaluate("() => window.tribune.audio.currentTime")
    await page.wait_for_function(
        f"() => window.tribune.audio.currentTime > {start} + {beyond}", timeout=timeout_ms
    )
    t: float = await page.evaluate("() => window.tribune.audio.currentTime")
    return t


class Stopwatch:
    """Seconds since it was made."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def unexpected(errors: list[str], *allowed: str) -> list[str]:
    """``errors`` minus the browser's own network log lines for failures a test caused on
    purpose (e.g. ``"status of 429"``, ``"net::ERR_FAILED"``)."""
    return [
        e
        for e in errors
        if not (
            e.startswith("console.error: Failed to load resource") and any(a in e for a in allowed)
        )
    ]


class CuttingProxy:
    """A TCP proxy in front of ``server`` that can fail connections the way a network
    does: ``await proxy.start()`` gives the server as seen through it (open pages there);
    ``proxy.cut(b"GET /listen/")`` resets every connection whose latest request starts
    so (a long response in flight, mid-body), ``proxy.freeze(...)`` stops passing on what
    the server sends on them (they stay open, silent); ``await proxy.close()`` stops it."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.requests: list[bytes] = []  # request lines, in order
        self._latest: dict[asyncio.StreamWriter, bytes] = {}
        self._pipes: dict[asyncio.StreamWriter, asyncio.StreamWriter] = {}
        self._flowing: dict[asyncio.StreamWriter, asyncio.Event] = {}
        self._listener: asyncio.Server | None = None

    async def start(self) -> LiveServer:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._listener.sockets[0].getsockname()[1]
        return dataclasses.replace(self.server, url=f"http://127.0.0.1:{port}")

    def cut(self, request_prefix: bytes) -> int:
        """Reset the connections now carrying such a request; how many there were."""
        cut = 0
        for client, line in list(self._latest.items()):
            if line.startswith(request_prefix):
                client.transport.abort()
                self._pipes[client].transport.abort()
                cut += 1
        return cut

    def freeze(self, request_prefix: bytes) -> int:
        """Hold back, from now on, what the server sends on the connections now carrying
        such a request (until they close); how many there were."""
        frozen = 0
        for client, line in list(self._latest.items()):
            if line.startswith(request_prefix):
                self._flowing[client].clear()
                frozen += 1
        return frozen

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for client, upstream in list(self._pipes.items()):
            self._flowing[client].set()
            client.transport.abort()
            upstream.transport.abort()
        await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.server.url.removeprefix("http://").split(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self._pipes[writer] = up_writer
        self._latest[writer] = b""
        flowing = self._flowing[writer] = asyncio.Event()
        flowing.set()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, watch: bool) -> None:
            try:
                while data := await src.read(65536):
                    if not watch:
                        await flowing.wait()
                    else:
                        for line in data.split(b"\r\n"):
                            if line.split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"DELETE"):
                                self._latest[writer] = line
                                self.requests.append(line)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                flowing.set()  # a frozen answer to a closed request: let it end too

        try:
            await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        finally:
            self._pipes.pop(writer, None)
            self._latest.pop(writer, None)
            self._flowing.pop(writer, None)
            writer.transport.abort()
            up_writer.transport.abort()
