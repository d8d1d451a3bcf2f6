"""Sign-up, log-in, sessions and API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from tribune.exceptions import InvalidInput, NotAuthenticated, NotFound, RateLimited
from tribune.service.runtime import Runtime
from tribune.store import users as store
from tribune.store.users import ApiToken, Session, User

USERNAME = re.compile(r"^[a-z0-9_]{3,30}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
SESSION_PREFIX = "tbs_"
API_TOKEN_PREFIX = "tbt_"  # noqa: S105 - a prefix, not a secret

_hasher = PasswordHasher()
# Verified against when the username does not exist, so both failures take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id() -> str:
    return secrets.token_hex(8)


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise InvalidInput("username must be 3-30 characters of letters, digits and underscores")
    return name


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long")
    return password


def validate_display_name(display_name: str) -> str:
    name = " ".join(display_name.split())
    if not 1 <= len(name) <= 64:
        raise InvalidInput("display_name must be 1-64 characters long")
    return name


@dataclass(frozen=True)
class LoggedIn:
    user: User
    session_token: str
    csrf_token: str


class Accounts:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def sign_up(self, username: str, password: str, display_name: str) -> LoggedIn:
        name = normalize_username(username)
        validate_password(password)
        shown = validate_display_name(display_name)
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        user = User(new_id(), name, shown, self.rt.now())
        async with self.rt.db.transaction() as conn:
            await store.create_user(conn, user, password_hash)
            return await self._new_session(conn, user)

    async def log_in(self, username: str, password: str) -> LoggedIn:
        name = username.strip().lower()
        decision = await self.rt.limiter.hit(
            f"login:{name}",
            self.rt.settings.login_attempts_per_minute / 60.0,
            self.rt.settings.login_attempts_per_minute,
        )
        if not decision.allowed:
            raise RateLimited(
                "too many log-in attempts for this username; wait and try again",
                decision.retry_after,
            )
        async with self.rt.db.read() as conn:
            found = await store.user_with_password(conn, name)
        stored_hash = found[1] if found else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored_hash, password)
        except (VerificationError, InvalidHashError):
            found = None
        if found is None:
            raise NotAuthenticated("username or password is wrong")
        user = found[0]
        async with self.rt.db.transaction() as conn:
            if _hasher.check_needs_rehash(stored_hash):
                new_hash = await asyncio.to_thread(_hasher.hash, password)
                await store.set_password_hash(conn, user.id, new_hash)
            return await self._new_session(conn, user)

    async def _new_session(self, conn: AsyncConnection, user: User) -> LoggedIn:
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.rt.now()
        expires = now + timedelta(seconds=self.rt.settings.session_ttl_s)
        await store.create_session(conn, token_hash(token), user.id, csrf, now, expires)
        return LoggedIn(user, token, csrf)

    async def log_out(self, session_token: str) -> None:
        async with self.rt.db.transaction() as conn:
            await store.delete_session(conn, token_hash(session_token))

    async def session(self, session_token: str) -> Session | None:
        async with self.rt.db.read() as conn:
            return await store.get_session(conn, token_hash(session_token), self.rt.now())

    async def create_api_token(self, user: User, name: str) -> tuple[ApiToken, str]:
        cleaned = name.strip()
        if not 1 <= len(cleaned) <= 64:
            raise InvalidInput("token name must be 1-64 characters long")
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.rt.db.transaction() as conn:
            record = await store.create_api_token(
                conn, new_id(), user.id, cleaned, token_hash(token), self.rt.now()
            )
        return record, token

    async def api_token_user(self, token: str) -> User | None:
        async with self.rt.db.read() as conn:
            return await store.user_by_api_token(conn, token_hash(token))

    async def list_api_tokens(self, user: User) -> list[ApiToken]:
        async with self.rt.db.read() as conn:
            return await store.list_api_tokens(conn, user.id)

    async def revoke_api_token(self, user: User, token_id: str) -> None:
        async with self.rt.db.transaction() as conn:
            if not await store.revoke_api_token(conn, user.id, token_id, self.rt.now()):
                raise NotFound(f"you have no active API token with id {token_id}")

    async def user_by_username(self, username: str) -> User:
        async with self.rt.db.read() as conn:
            user = await store.get_user_by_username(conn, username.strip().lower())
        if user is None:
            raise NotFound(f"no user is called {username!r}")
        return user

    async def user_by_id(self, user_id: str) -> User:
        async with self.rt.db.read() as conn:
            user = await store.get_user(conn, user_id)
        if user is None:
            raise NotFound(f"there is no user with id {user_id!r}")
        return user
