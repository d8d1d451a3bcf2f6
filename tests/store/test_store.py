"""Storage against both backends: SQLite (file) and a real PostgreSQL server."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tribune.exceptions import AlreadyExists
from tribune.rooms.roles import Role
from tribune.rooms.space import Invitation, Room, SpaceState, SpeakRequest, StageMember
from tribune.store import spaces as store
from tribune.store import users as users_store
from tribune.store.db import Database
from tribune.store.tables import metadata
from tribune.store.users import User

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    async with Database(url) as database:
        yield database


async def _user(db: Database, name: str | None = None) -> User:
    name = name or f"u{secrets.token_hex(4)}"
    user = User(secrets.token_hex(8), name, name.title(), NOW)
    async with db.transaction() as conn:
        await users_store.create_user(conn, user, "hash")
    return user


def _room(host: User) -> Room:
    room = Room(secrets.token_hex(6), host.id, "T", "D", SpaceState.LIVE, True, NOW, started_at=NOW)
    room.members[host.id] = StageMember(host.id, host.display_name, Role.HOST, NOW)
    return room


async def test_migrations_match_the_schema_and_are_idempotent(db: Database):
    """After upgrade the database has exactly the tables/columns the code declares."""
    await db.migrate()  # second run: nothing to do, no error

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(sync_conn), metadata)

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_room_round_trip_and_diff_save(db: Database):
    """What is saved loads back equal; a change saves only the difference, removals too."""
    host, a, b, c = [await _user(db) for _ in range(4)]
    room = _room(host)
    room.members[a.id] = StageMember(a.id, a.display_name, Role.SPEAKER, NOW, True, False)
    room.requests[b.id] = SpeakRequest(b.id, b.display_name, NOW)
    room.invitations[c.id] = Invitation(c.id, Role.COHOST, host.id, NOW)
    async with db.transaction() as conn:
        await store.insert_room(conn, room)
    async with db.read() as conn:
        loaded = await store.load_room(conn, room.id)
    assert loaded == room
    assert loaded is not None
    before = loaded.snapshot()
    loaded.members[a.id].role = Role.COHOST
    del loaded.requests[b.id]
    loaded.members[b.id] = StageMember(b.id, b.display_name, Role.SPEAKER, NOW)
    loaded.removed.add(c.id)
    del loaded.invitations[c.id]
    loaded.title = "Renamed"
    loaded.state = SpaceState.ENDED
    loaded.ended_at = NOW + timedelta(hours=1)
    async with db.transaction() as conn:
        await store.save_room(conn, before, loaded)
    async with db.read() as conn:
        again = await store.load_room(conn, room.id)
    assert again == loaded
    assert again is not None
    assert again.ended_at == NOW + timedelta(hours=1)
    assert again.ended_at.tzinfo is not None


async def test_unique_usernames(db: Database):
    """A taken username raises AlreadyExists and leaves the transaction usable."""
    user = await _user(db)
    async with db.transaction() as conn:
        with pytest.raises(AlreadyExists):
            await users_store.create_user(conn, User("other-id", user.username, "X", NOW), "h")
        assert await users_store.get_user(conn, user.id) == user


async def test_reactions_accumulate(db: Database):
    """Reaction totals are an upsert: concurrent-safe increments per (space, reaction)."""
    host = await _user(db)
    room = _room(host)
    async with db.transaction() as conn:
        await store.insert_room(conn, room)
        for _ in range(3):
            await store.add_reaction(conn, room.id, "clap")
        await store.add_reaction(conn, room.id, "fire", 2)
    async with db.read() as conn:
        assert await store.reaction_counts(conn, room.id) == {"clap": 3, "fire": 2}


async def test_reminders_and_notifications(db: Database):
    """Reminders are idempotent; starting notifies each subscriber once."""
    host, fan = await _user(db), await _user(db)
    room = _room(host)
    room.state = SpaceState.SCHEDULED
    async with db.transaction() as conn:
        await store.insert_room(conn, room)
        assert await store.add_reminder(conn, room.id, fan.id, NOW)
        assert not await store.add_reminder(conn, room.id, fan.id, NOW)
        assert await store.reminder_counts(conn, [room.id]) == {room.id: 1}
        assert await store.notify_reminded(conn, room.id, "space_started", NOW) == 1
        rows = await store.list_notifications(conn, fan.id, 10)
    assert [(r.space_id, r.kind, r.title) for r in rows] == [(room.id, "space_started", "T")]


async def test_listing_orders_and_filters(db: Database):
    """Upcoming is soonest first and carries stage members."""
    host = await _user(db)
    later, sooner = _room(host), _room(host)
    for r, hours in ((later, 5), (sooner, 1)):
        r.state = SpaceState.SCHEDULED
        r.started_at = None
        r.scheduled_start = NOW + timedelta(hours=hours)
        async with db.transaction() as conn:
            await store.insert_room(conn, r)
    async with db.read() as conn:
        rooms = await store.list_rooms(conn, [SpaceState.SCHEDULED], limit=1000)
    ids = [r.id for r in rooms]
    assert ids.index(sooner.id) < ids.index(later.id)
    assert rooms[ids.index(sooner.id)].members[host.id].role is Role.HOST


async def test_sessions_expire(db: Database):
    """An expired session is not returned."""
    user = await _user(db)
    async with db.transaction() as conn:
        await users_store.create_session(conn, "h1", user.id, "csrf", NOW, NOW + timedelta(1))
        assert (await users_store.get_session(conn, "h1", NOW)).user == user  # type: ignore[union-attr]
        assert await users_store.get_session(conn, "h1", NOW + timedelta(2)) is None
