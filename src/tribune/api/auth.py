"""Who is calling: a session cookie (browsers), a bearer API token (programs) or a
bearer listener token (anyone who joined a Space, guests included).

When an ``Authorization`` header is present it alone decides; cookies are ignored, so a
program's request never needs CSRF protection. A cookie-authenticated write must carry
``X-CSRF-Token`` equal to the session's token (returned at log-in and in the readable
``tribune_csrf`` cookie): another site can make the browser send the cookie, but cannot
read the token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tribune.admission.tokens import PREFIX as LISTENER_PREFIX
from tribune.admission.tokens import ListenerToken
from tribune.exceptions import CSRFFailed, InvalidToken, NotAuthenticated, PermissionDenied
from tribune.service.accounts import API_TOKEN_PREFIX
from tribune.store.users import User

SESSION_COOKIE = "tribune_session"
CSRF_COOKIE = "tribune_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    user: User | None = None
    listener: ListenerToken | None = None
    #: the raw session cookie, when that is how the caller authenticated
    session_token: str | None = None
    csrf_token: str | None = None


# Declared so that /docs offers an "Authorize" dialog for both; _caller reads the raw
# headers itself so that every failure gets our problem+json wording.
_bearer_scheme = HTTPBearer(auto_error=False, description="API token (tbt_) or listener token")
_csrf_scheme = APIKeyHeader(
    name="X-CSRF-Token", auto_error=False, description="csrf_token from sign-up or log-in"
)


async def _caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    _csrf: Annotated[str | None, Security(_csrf_scheme)],
) -> Caller:
    services = request.app.state.services
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        if token.startswith(API_TOKEN_PREFIX):
            user = await services.accounts.api_token_user(token)
            if user is None:
                raise InvalidToken("API token is unknown or revoked")
            return Caller(user=user)
        if token.startswith(LISTENER_PREFIX):
            return Caller(listener=services.runtime.listener_tokens.verify(token))
        raise InvalidToken("bearer token is neither an API token nor a listener token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return Caller()
    session = await services.accounts.session(cookie)
    if session is None:
        return Caller()  # expired or logged out: an anonymous caller, as the browser will see
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER)
        if not sent:
            raise CSRFFailed(
                "missing CSRF token: send the X-CSRF-Token header with the csrf_token "
                "from log-in (also in the tribune_csrf cookie)"
            )
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise CSRFFailed("CSRF token does not match this session")
    return Caller(user=session.user, session_token=cookie, csrf_token=session.csrf_token)


async def _user(caller: Annotated[Caller, Depends(_caller)]) -> User:
    if caller.user is None:
        if caller.listener is not None:
            # Known, but as a listener token: a guest (or a listener) asking for more.
            raise PermissionDenied("a listener token only listens, reacts and heartbeats; log in")
        raise NotAuthenticated("log in, or send 'Authorization: Bearer <API token>'")
    return caller.user


async def _listener(caller: Annotated[Caller, Depends(_caller)]) -> ListenerToken:
    if caller.listener is None:
        raise NotAuthenticated("send 'Authorization: Bearer <listener token>' from the join")
    return caller.listener


CallerDep = Annotated[Caller, Depends(_caller)]
UserDep = Annotated[User, Depends(_user)]
ListenerDep = Annotated[ListenerToken, Depends(_listener)]
