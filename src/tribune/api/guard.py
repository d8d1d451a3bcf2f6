"""One pure-ASGI middleware for what every request must respect before any route runs:
a size limit on bodies and a content type on JSON writes.

Written here rather than using Starlette's ``RequestBodyLimitMiddleware`` because that one
answers ``text/plain`` and our API promises ``application/problem+json`` for every error.
Pure ASGI rather than ``BaseHTTPMiddleware``: the join path is hot.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tribune.api.problems import problem

_WRITES = frozenset({"POST", "PUT", "PATCH"})


_JSON = frozenset({"application/json"})
_SDP = frozenset({"application/sdp"})


def content_types(path: str) -> frozenset[str]:
    """What a write to ``path`` must be: SDP for WHIP, JSON everywhere else."""
    return _SDP if path.endswith("/whip") else _JSON


class _TooLarge(HTTPException):
    """Raised from ``receive``; FastAPI re-raises HTTPExceptions met while reading a body,
    so it reaches the problem handler like any other 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the {limit}-byte limit")


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        content_types: Callable[[str], frozenset[str]] = content_types,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.content_types = content_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length_header = headers.get(b"content-length")
        has_body = (length_header not in (None, b"0")) or b"transfer-encoding" in headers
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                await problem(400, "Content-Length is not a number")(scope, receive, send)
                return
            if length > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        if has_body and scope["method"] in _WRITES and scope["path"].startswith("/api/"):
            raw = headers.get(b"content-type", b"").decode("latin-1")
            media = raw.split(";", 1)[0].strip().lower()
            allowed = self.content_types(scope["path"])
            if media not in allowed:
                await problem(
                    415,
                    f"send the body as {' or '.join(sorted(allowed))}, not {media or 'nothing'}",
                    instance=scope["path"],
                )(scope, receive, send)
                return

        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise _TooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(
            413,
            f"request body is larger than the {self.max_body_bytes}-byte limit",
            instance=scope["path"],
        )(scope, receive, send)
