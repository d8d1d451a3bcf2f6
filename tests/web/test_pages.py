"""Pages are static files served with a strict Content-Security-Policy."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.web.conftest import LaunchBrowser, assert_usable, new_page, page_errors
from tribune.web.pages import CSP


def test_pages_carry_the_security_headers(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for path in ("/", "/spaces/sp_whatever"):
            resp = client.get(path)
            assert resp.status_code == 200, path
            assert resp.headers["content-type"].startswith("text/html")
            assert resp.headers["content-security-policy"] == CSP
            assert resp.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP


async def test_home_renders_without_errors(
    media_server: LiveServer, launch_browser: LaunchBrowser
) -> None:
    browser = await launch_browser()
    _, page = await new_page(browser)
    await page.goto(f"{media_server.url}/")
    await page.wait_for_load_state("networkidle")
    await assert_usable(page)
    assert page_errors(page) == []
