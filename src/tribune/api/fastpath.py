"""Anonymous joins, answered below the framework.

At 8 pm the join endpoint is hit by the whole crowd at once, almost all of them guests:
no cookie, no Authorization header, nothing to look up. For those requests this pure-ASGI
middleware calls the same service (``Spaces.join``) and the same response builder as the
FastAPI route, but skips FastAPI's routing, dependency solving and its own middleware,
which cost more than the join itself (see ``bench/join.py``). Everything else, including
joins that carry credentials, goes on to the documented FastAPI route.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from tribune.api.listener_views import join_response
from tribune.api.problems import problem_for
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
        try:
            response = join_response(services, await services.spaces.join(space_id, None))
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
