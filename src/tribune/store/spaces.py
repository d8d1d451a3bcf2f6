"""Spaces: load a :class:`~tribune.rooms.space.Room`, save what changed, list, remind."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from tribune.rooms.roles import Role
from tribune.rooms.space import Invitation, Room, SpaceState, SpeakRequest, StageMember
from tribune.store.tables import (
    invitations,
    notifications,
    reaction_totals,
    reminders,
    space_members,
    space_removals,
    spaces,
    speak_requests,
    users,
)

_SPACE_FIELDS = (
    "host_id",
    "title",
    "description",
    "state",
    "allow_guests",
    "created_at",
    "scheduled_start",
    "started_at",
    "ended_at",
)


def _space_values(room: Room) -> dict[str, Any]:
    values = {name: getattr(room, name) for name in _SPACE_FIELDS}
    values["state"] = room.state.value
    return values


def _room(row: Any) -> Room:
    return Room(
        id=row.id,
        host_id=row.host_id,
        title=row.title,
        description=row.description,
        state=SpaceState(row.state),
        allow_guests=row.allow_guests,
        created_at=row.created_at,
        scheduled_start=row.scheduled_start,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


async def insert_room(conn: AsyncConnection, room: Room) -> None:
    await conn.execute(insert(spaces).values(id=room.id, **_space_values(room)))
    empty = dataclasses.replace(room, members={}, requests={}, invitations={}, removed=set())
    await _save_children(conn, empty, room)


async def load_room(conn: AsyncConnection, space_id: str, *, lock: bool = False) -> Room | None:
    """The whole aggregate. ``lock`` takes a row lock (PostgreSQL) for read-modify-write."""
    query = select(spaces).where(spaces.c.id == space_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    room = _room(row)
    for m in await conn.execute(
        select(space_members, users.c.display_name)
        .join(users, users.c.id == space_members.c.user_id)
        .where(space_members.c.space_id == space_id)
        .order_by(space_members.c.joined_at)
    ):
        room.members[m.user_id] = StageMember(
            m.user_id, m.display_name, Role(m.role), m.joined_at, m.host_muted, m.self_muted
        )
    for r in await conn.execute(
        select(speak_requests, users.c.display_name)
        .join(users, users.c.id == speak_requests.c.user_id)
        .where(speak_requests.c.space_id == space_id)
        .order_by(speak_requests.c.requested_at)
    ):
        room.requests[r.user_id] = SpeakRequest(r.user_id, r.display_name, r.requested_at)
    for i in await conn.execute(select(invitations).where(invitations.c.space_id == space_id)):
        room.invitations[i.user_id] = Invitation(
            i.user_id, Role(i.role), i.invited_by, i.created_at
        )
    room.removed = set(
        (
            await conn.execute(
                select(space_removals.c.user_id).where(space_removals.c.space_id == space_id)
            )
        ).scalars()
    )
    return room


async def save_room(conn: AsyncConnection, before: Room, after: Room) -> None:
    """Write only what differs between two states of the same aggregate."""
    changed = {k: v for k, v in _space_values(after).items() if _space_values(before)[k] != v}
    if changed:
        await conn.execute(update(spaces).where(spaces.c.id == after.id).values(**changed))
    await _save_children(conn, before, after)


async def _save_children(conn: AsyncConnection, before: Room, after: Room) -> None:
    sid = after.id
    gone = before.members.keys() - after.members.keys()
    if gone:
        await conn.execute(
            delete(space_members).where(
                space_members.c.space_id == sid, space_members.c.user_id.in_(gone)
            )
        )
    for uid, m in after.members.items():
        values = {"role": m.role.value, "host_muted": m.host_muted, "self_muted": m.self_muted}
        old = before.members.get(uid)
        if old is None:
            await conn.execute(
                insert(space_members).values(
                    space_id=sid, user_id=uid, joined_at=m.joined_at, **values
                )
            )
        elif (old.role, old.host_muted, old.self_muted) != (m.role, m.host_muted, m.self_muted):
            await conn.execute(
                update(space_members)
                .where(space_members.c.space_id == sid, space_members.c.user_id == uid)
                .values(**values)
            )
    await _sync_keys(
        conn,
        speak_requests,
        sid,
        before.requests,
        after.requests,
        lambda r: {"requested_at": r.requested_at},
    )
    await _sync_keys(
        conn,
        invitations,
        sid,
        before.invitations,
        after.invitations,
        lambda i: {"role": i.role.value, "invited_by": i.invited_by, "created_at": i.created_at},
    )
    added = after.removed - before.removed
    if added:
        await conn.execute(
            insert(space_removals), [{"space_id": sid, "user_id": uid} for uid in sorted(added)]
        )


async def _sync_keys(
    conn: AsyncConnection,
    table: Any,
    sid: str,
    before: dict[str, Any],
    after: dict[str, Any],
    values: Any,
) -> None:
    gone = [uid for uid in before if uid not in after or after[uid] != before[uid]]
    if gone:
        await conn.execute(delete(table).where(table.c.space_id == sid, table.c.user_id.in_(gone)))
    new = [uid for uid in after if uid not in before or after[uid] != before[uid]]
    if new:
        await conn.execute(
            insert(table),
            [{"space_id": sid, "user_id": uid, **values(after[uid])} for uid in new],
        )


async def list_rooms(
    conn: AsyncConnection, states: Sequence[SpaceState], *, limit: int, offset: int = 0
) -> list[Room]:
    """Spaces in the given states, with their stage members (no requests/invitations)."""
    order: Any
    if states == [SpaceState.SCHEDULED]:
        order = [spaces.c.scheduled_start.asc(), spaces.c.id]
    elif SpaceState.LIVE in states:
        order = [spaces.c.started_at.desc(), spaces.c.id]
    else:
        order = [spaces.c.ended_at.desc(), spaces.c.id]
    rows = await conn.execute(
        select(spaces)
        .where(spaces.c.state.in_([s.value for s in states]))
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    rooms = {row.id: _room(row) for row in rows}
    if rooms:
        for m in await conn.execute(
            select(space_members, users.c.display_name)
            .join(users, users.c.id == space_members.c.user_id)
            .where(space_members.c.space_id.in_(rooms.keys()))
            .order_by(space_members.c.joined_at)
        ):
            rooms[m.space_id].members[m.user_id] = StageMember(
                m.user_id, m.display_name, Role(m.role), m.joined_at, m.host_muted, m.self_muted
            )
    return list(rooms.values())


async def total_listeners(conn: AsyncConnection, space_ids: Sequence[str]) -> dict[str, int]:
    rows = await conn.execute(
        select(spaces.c.id, spaces.c.total_listeners).where(spaces.c.id.in_(space_ids))
    )
    return {r.id: r.total_listeners for r in rows if r.total_listeners is not None}


async def set_total_listeners(conn: AsyncConnection, space_id: str, total: int) -> None:
    await conn.execute(update(spaces).where(spaces.c.id == space_id).values(total_listeners=total))


async def is_removed(conn: AsyncConnection, space_id: str, user_id: str) -> bool:
    row = await conn.execute(
        select(space_removals.c.user_id).where(
            space_removals.c.space_id == space_id, space_removals.c.user_id == user_id
        )
    )
    return row.first() is not None


# -- reminders and notifications -------------------------------------------------------------


async def add_reminder(conn: AsyncConnection, space_id: str, user_id: str, now: datetime) -> bool:
    stmt = _insert(conn, reminders).values(space_id=space_id, user_id=user_id, created_at=now)
    result = await conn.execute(stmt.on_conflict_do_nothing())
    return bool(result.rowcount)


async def remove_reminder(conn: AsyncConnection, space_id: str, user_id: str) -> bool:
    result = await conn.execute(
        delete(reminders).where(reminders.c.space_id == space_id, reminders.c.user_id == user_id)
    )
    return bool(result.rowcount)


async def reminder_counts(conn: AsyncConnection, space_ids: Sequence[str]) -> dict[str, int]:
    rows = await conn.execute(
        select(reminders.c.space_id, func.count())
        .where(reminders.c.space_id.in_(space_ids))
        .group_by(reminders.c.space_id)
    )
    return {r[0]: r[1] for r in rows}


async def has_reminder(conn: AsyncConnection, space_id: str, user_id: str) -> bool:
    row = await conn.execute(
        select(reminders.c.user_id).where(
            and_(reminders.c.space_id == space_id, reminders.c.user_id == user_id)
        )
    )
    return row.first() is not None


async def notify_reminded(conn: AsyncConnection, space_id: str, kind: str, now: datetime) -> int:
    """One notification per person who asked to be reminded of this Space."""
    subscribers = (
        (await conn.execute(select(reminders.c.user_id).where(reminders.c.space_id == space_id)))
        .scalars()
        .all()
    )
    if subscribers:
        await conn.execute(
            insert(notifications),
            [
                {"user_id": uid, "space_id": space_id, "kind": kind, "created_at": now}
                for uid in subscribers
            ],
        )
    return len(subscribers)


async def list_notifications(conn: AsyncConnection, user_id: str, limit: int) -> list[Any]:
    rows = await conn.execute(
        select(notifications, spaces.c.title)
        .join(spaces, spaces.c.id == notifications.c.space_id)
        .where(notifications.c.user_id == user_id)
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    return list(rows)


async def list_reminded_spaces(conn: AsyncConnection, user_id: str) -> list[str]:
    rows = await conn.execute(
        select(reminders.c.space_id)
        .where(reminders.c.user_id == user_id)
        .order_by(reminders.c.created_at)
    )
    return list(rows.scalars())


# -- reactions --------------------------------------------------------------------------------


def _insert(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def add_reaction(conn: AsyncConnection, space_id: str, reaction: str, n: int = 1) -> None:
    stmt = _insert(conn, reaction_totals).values(space_id=space_id, reaction=reaction, count=n)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["space_id", "reaction"],
            set_={"count": reaction_totals.c.count + n},
        )
    )


async def reaction_counts(conn: AsyncConnection, space_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(reaction_totals.c.reaction, reaction_totals.c.count).where(
            reaction_totals.c.space_id == space_id
        )
    )
    by_name: dict[str, int] = defaultdict(int)
    for name, count in rows:
        by_name[name] += count
    return dict(by_name)
