"""The waiting room for real: a Space admitting one listener every two seconds, a page
that arrives just after someone else, sees its place in line and plays when let in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.async_api import Request, expect

from tests.audio import whip_publish
from tests.conftest import LiveServer
from tests.helpers import create_space, sign_up
from tests.web.conftest import LaunchBrowser, page_errors
from tests.web.space_helpers import open_space, playing, unexpected


@pytest.fixture(scope="module")
def slow_server(start_server: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    """The embedded default with live audio, admitting 0.5 listeners a second per Space."""
    server = start_server(admit_per_s=0.5)
    yield server
    server.stop()


async def test_a_listener_waits_in_the_real_line_and_plays_when_let_in(
    slow_server: LiveServer, launch_browser: LaunchBrowser
) -> None:
    host = sign_up(slow_server.url)
    sid = create_space(host, title="Crowded for real")["id"]
    r = host.post("/api/tokens", json={"name": "speaker"})
    pub = await whip_publish(
        slow_server.url, sid, {"Authorization": f"Bearer {r.json()['token']}"}, 440
    )
    try:
        browser = await launch_browser()
        page = await open_space(browser, slow_server, sid)
        joins: list[tuple[float, str | None]] = []

        def on_request(request: Request) -> None:
            if request.url.endswith(f"/api/spaces/{sid}/join"):
                joins.append((time.monotonic(), request.post_data))

        page.on("request", on_request)
        # someone else takes the one free place just before this page asks
        async with httpx.AsyncClient(base_url=slow_server.url, timeout=10) as other:
            first = await other.post(f"/api/spaces/{sid}/join")
        assert first.status_code == 201, first.text
        await page.get_by_role("button", name="▶ Play").click()
        status = page.locator("#status")
        await expect(status).to_contain_text("You're in line: position 1")
        await playing(page, beyond=0.5, timeout_ms=15_000)
        await expect(status).to_have_text("Live.")
        assert len(joins) >= 2
        assert joins[0][1] is None  # the first join has no body...
        assert all('"ticket":"tbq_' in (body or "") for _, body in joins[1:])  # ...then the ticket
        assert joins[1][0] - joins[0][0] >= 1.0  # never sooner than Retry-After
        assert unexpected(page_errors(page), "status of 503") == []
    finally:
        await pub.close()
        host.post(f"/api/spaces/{sid}/end")
