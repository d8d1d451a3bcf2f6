"""Anonymous joins, answered below the framework.

At 8 pm the join endpoint is hit by the whole crowd at once, almost all of them guests:
no cookie, no Authorization header, nothing to look up. For those requests this pure-ASGI
middleware calls the same service (``Spaces.join``) and the same response builder as the
FastAPI route, but skips FastAPI's routing, dependency solving and its own middleware,
which cost more than the join itself (see ``bench/join.py``). Everything else, including
joins that carry credentials, goes on to the documented FastAPI route.

A join coming back from the waiting room carries a small JSON body (``{"ticket": ...}``),
as does one in attack mode (``{"pow": ...}``); only then is a body read and validated
(with the route's own model, ``JoinIn``), so a first join costs what it did.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tribune.api.addresses import client_address
from tribune.api.listener_views import join_response
from tribune.api.problems import problem, problem_for
from tribune.api.schemas import JoinIn
from tribune.exceptions import TribuneError

_JOIN = re.compile(r"^/api/spaces/([A-Za-z0-9_-]{1,32})/join$")


class GuestJoinFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _JOIN.match(scope["path"])
            if match is not None and not _has_credentials(scope):
                await self._join(scope, receive, send, match.group(1))
                return
        await self.app(scope, receive, send)

    async def _join(self, scope: Scope, receive: Receive, send: Send, space_id: str) -> None:
        services = scope["app"].state.services
        ticket: str | None = None
        pow: str | None = None
        if _has_body(scope):
            raw = await _read_body(receive)
            parsed = None if raw.strip() in (b"", b"{}") else _parse_body(raw, scope["path"])
            if isinstance(parsed, Response):
                await parsed(scope, receive, send)
                return
            if parsed is not None:
                ticket, pow = parsed.ticket, parsed.pow
        address = client_address(scope, services.runtime.settings.trusted_proxies)
        try:
            joined = await services.spaces.join(space_id, None, ticket, pow=pow, address=address)
            response = join_response(services, joined)
        except TribuneError as error:
            response = problem_for(error, scope["path"])
        # Anything else propagates to ServerErrorMiddleware, as it would from a route.
        await response(scope, receive, send)


def _has_credentials(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return True
        if name == b"cookie" and b"tribune_session=" in value:
            return True
    return False


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


async def _read_body(receive: Receive) -> bytes:
    """The whole body (``RequestGuard``, outside us, stops it at the size limit: 413)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse_body(raw: bytes, path: str) -> JoinIn | Response:
    """The body as the route would take it, or the problem the route would answer."""
    try:
        return JoinIn.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            reason = (errors[0].get("ctx") or {}).get("error", "parse error")
            return problem(
                400,
                f"request body is not valid JSON: {reason}",
                title="Malformed JSON",
                instance=path,
            )
        described = [
            {"field": ".".join(("body", *(str(p) for p in e["loc"]))), "message": e["msg"]}
            for e in errors
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in described)
        return problem(422, summary, title="Invalid input", instance=path, errors=described)
