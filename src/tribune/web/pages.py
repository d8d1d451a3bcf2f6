"""The web client's pages: plain HTML files in this package, the same for everyone.

Everything personal (who is signed in, what they may do) comes from the API in the page's
JavaScript, so a page is a static file a CDN could cache. Pages load only same-origin
scripts and styles (no CDN at run time), and say so in a Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

#: hls.js starts its transmuxing worker from a blob: URL, and plays through MSE (blob:).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

#: URL path -> page file. ``{space_id}`` pages read the id from ``location`` themselves.
PAGES = {
    "/": "home.html",
    "/signup": "signup.html",
    "/login": "login.html",
    "/new": "new.html",
    "/spaces/{space_id}": "space.html",
    "/spaces/{space_id}/replay": "replay.html",
}


def router() -> APIRouter:
    """A router serving every page in ``PAGES`` that exists in the package."""
    web = resources.files("tribune.web")
    pages = APIRouter(include_in_schema=False)
    for path, name in PAGES.items():
        source = web.joinpath(name)
        if not source.is_file():
            continue
        pages.add_api_route(path, _serve(source.read_text()), methods=["GET"], name=name)
    return pages


def _serve(html: str) -> Callable[[], Awaitable[HTMLResponse]]:
    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers=HEADERS)

    return page
