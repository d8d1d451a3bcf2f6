"""Accounts, sessions and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tribune.api.auth import CSRF_COOKIE, SESSION_COOKIE, CallerDep, UserDep
from tribune.api.schemas import (
    LogIn,
    NewTokenOut,
    NotificationOut,
    SessionOut,
    SignUp,
    TokenCreate,
    TokenOut,
    UserOut,
)
from tribune.api.services import ServicesDep
from tribune.service.accounts import LoggedIn

router = APIRouter(prefix="/api", tags=["accounts"])


def _set_cookies(response: Response, services: ServicesDep, logged_in: LoggedIn) -> None:
    settings = services.runtime.settings
    for name, value, httponly in (
        (SESSION_COOKIE, logged_in.session_token, True),
        # Readable by the page's script on purpose: it echoes it as X-CSRF-Token.
        (CSRF_COOKIE, logged_in.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=settings.session_ttl_s,
            secure=settings.cookie_secure,
            httponly=httponly,
            samesite="lax",
            path="/",
        )


def _session_out(logged_in: LoggedIn) -> SessionOut:
    return SessionOut(user=UserOut(**logged_in.user.public()), csrf_token=logged_in.csrf_token)


@router.post("/accounts", status_code=201, response_model=SessionOut, summary="Sign up")
async def sign_up(body: SignUp, response: Response, services: ServicesDep) -> SessionOut:
    logged_in = await services.accounts.sign_up(
        body.username, body.password, body.display_name or body.username
    )
    _set_cookies(response, services, logged_in)
    return _session_out(logged_in)


@router.post("/session", response_model=SessionOut, summary="Log in")
async def log_in(body: LogIn, response: Response, services: ServicesDep) -> SessionOut:
    logged_in = await services.accounts.log_in(body.username, body.password)
    _set_cookies(response, services, logged_in)
    return _session_out(logged_in)


@router.delete("/session", status_code=204, summary="Log out")
async def log_out(caller: CallerDep, services: ServicesDep) -> Response:
    if caller.session_token is not None:
        await services.accounts.log_out(caller.session_token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", response_model=SessionOut, summary="Who am I")
async def me(caller: CallerDep, user: UserDep) -> SessionOut:
    return SessionOut(user=UserOut(**user.public()), csrf_token=caller.csrf_token)


@router.get("/me/notifications", response_model=list[NotificationOut])
async def notifications(
    user: UserDep, services: ServicesDep, limit: int = 50
) -> list[dict[str, object]]:
    return await services.spaces.notifications(user, max(1, min(limit, 200)))


@router.post("/tokens", status_code=201, response_model=NewTokenOut, summary="Create an API token")
async def create_token(body: TokenCreate, user: UserDep, services: ServicesDep) -> NewTokenOut:
    record, token = await services.accounts.create_api_token(user, body.name)
    return NewTokenOut(id=record.id, name=record.name, created_at=record.created_at, token=token)


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(user: UserDep, services: ServicesDep) -> list[TokenOut]:
    return [
        TokenOut(id=t.id, name=t.name, created_at=t.created_at, revoked_at=t.revoked_at)
        for t in await services.accounts.list_api_tokens(user)
    ]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(token_id: str, user: UserDep, services: ServicesDep) -> Response:
    await services.accounts.revoke_api_token(user, token_id)
    return Response(status_code=204)
