"""Accounts, log-in sessions and API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tribune.exceptions import AlreadyExists
from tribune.store.tables import api_tokens, sessions, users


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    created_at: datetime

    def public(self) -> dict[str, str]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name}


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


def _user(row: Any) -> User:
    return User(row.id, row.username, row.display_name, row.created_at)


async def create_user(conn: AsyncConnection, user: User, password_hash: str) -> User:
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(users).values(
                    id=user.id,
                    username=user.username,
                    display_name=user.display_name,
                    password_hash=password_hash,
                    created_at=user.created_at,
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"the username {user.username!r} is taken") from None
    return user


async def user_with_password(conn: AsyncConnection, username: str) -> tuple[User, str] | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return None if row is None else (_user(row), row.password_hash)


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else _user(row)


async def get_user_by_username(conn: AsyncConnection, username: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return None if row is None else _user(row)


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    await conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=password_hash)
    )


async def create_session(
    conn: AsyncConnection,
    token_hash: str,
    user_id: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(sessions).values(
            id=token_hash,
            user_id=user_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def get_session(conn: AsyncConnection, token_hash: str, now: datetime) -> Session | None:
    query = (
        select(users, sessions.c.csrf_token, sessions.c.expires_at)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(sessions.c.id == token_hash, sessions.c.expires_at > now)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else Session(_user(row), row.csrf_token, row.expires_at)


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(sessions).where(sessions.c.id == token_hash))


async def create_api_token(
    conn: AsyncConnection, token_id: str, user_id: str, name: str, token_hash: str, now: datetime
) -> ApiToken:
    await conn.execute(
        insert(api_tokens).values(
            id=token_id, user_id=user_id, name=name, token_hash=token_hash, created_at=now
        )
    )
    return ApiToken(token_id, name, now, None)


async def user_by_api_token(conn: AsyncConnection, token_hash: str) -> User | None:
    query = (
        select(users)
        .join(api_tokens, api_tokens.c.user_id == users.c.id)
        .where(api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None))
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _user(row)


async def list_api_tokens(conn: AsyncConnection, user_id: str) -> list[ApiToken]:
    rows = await conn.execute(
        select(api_tokens).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.created_at)
    )
    return [ApiToken(r.id, r.name, r.created_at, r.revoked_at) for r in rows]


async def revoke_api_token(
    conn: AsyncConnection, user_id: str, token_id: str, now: datetime
) -> bool:
    result = await conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.user_id == user_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(result.rowcount)
