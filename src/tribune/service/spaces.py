"""Spaces as a service: every change goes load -> domain -> save -> publish."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tribune.admission.tokens import ListenerToken
from tribune.admission.waiting import TicketUsed
from tribune.exceptions import (
    InvalidTransition,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ProofOfWorkRequired,
    Queued,
    RateLimited,
    RemovedFromSpace,
)
from tribune.presence.base import ListenerCounts
from tribune.rooms.permissions import Action, authorize
from tribune.rooms.reactions import REACTIONS, validate_reaction
from tribune.rooms.roles import Role
from tribune.rooms.space import (
    Room,
    RoomEvent,
    SpaceState,
    StageMember,
    validate_description,
    validate_schedule,
    validate_title,
)
from tribune.service.runtime import Runtime
from tribune.store import spaces as store
from tribune.store.users import User

logger = logging.getLogger(__name__)

GUEST_PREFIX = "g_"
#: heartbeats per second per listener token (a player sends one every
#: TRIBUNE_HEARTBEAT_INTERVAL_S; the burst covers retries after a network blip)
HEARTBEATS_PER_S = 1.0
HEARTBEAT_BURST = 5
_MAX_GATES = 10_000


def new_space_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Joined:
    space_id: str
    listener_id: str
    token: str
    expires_at: int


#: from this long before a Space's scheduled start until it is live, each worker looks at
#: its state every START_WATCH_S (instead of the room state's max-age)
START_WATCH_LEAD_S = 5.0
START_WATCH_S = 0.1


@dataclass(frozen=True)
class _Gate:
    """What the join path needs to know about a Space, cached briefly in memory."""

    state: SpaceState
    allow_guests: bool
    fetched: float
    missing: bool = False  # no such Space (remembered, like the others)
    scheduled_start: datetime | None = None


class Spaces:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._locks: dict[str, asyncio.Lock] = {}
        self._gates: dict[str, _Gate] = {}
        self._gate_fetches: dict[str, asyncio.Future[_Gate]] = {}
        self._state_docs: dict[str, tuple[float, bytes, str]] = {}

    # -- reading -------------------------------------------------------------------------

    async def get(self, space_id: str) -> Room:
        async with self.rt.db.read() as conn:
            room = await store.load_room(conn, space_id)
        if room is None:
            raise NotFound(f"there is no Space with id {space_id!r}")
        return room

    async def counts(self, room: Room) -> ListenerCounts:
        if room.state in (SpaceState.ENDED, SpaceState.CANCELLED):
            async with self.rt.db.read() as conn:
                totals = await store.total_listeners(conn, [room.id])
            return ListenerCounts(0, totals.get(room.id, 0))
        return await self.rt.presence.counts(room.id)

    async def listing(
        self, states: Sequence[SpaceState], limit: int, offset: int
    ) -> list[tuple[Room, ListenerCounts, int]]:
        async with self.rt.db.read() as conn:
            rooms = await store.list_rooms(conn, states, limit=limit, offset=offset)
            ids = [r.id for r in rooms]
            reminders = await store.reminder_counts(conn, ids) if ids else {}
            totals = await store.total_listeners(conn, ids) if ids else {}
        result = []
        for room in rooms:
            if room.state is SpaceState.LIVE or room.state is SpaceState.SCHEDULED:
                counts = await self.rt.presence.counts(room.id)
            else:
                counts = ListenerCounts(0, totals.get(room.id, 0))
            result.append((room, counts, reminders.get(room.id, 0)))
        if SpaceState.LIVE in states:
            result.sort(key=lambda item: -item[1].concurrent)
        return result

    async def reminder_count(self, space_id: str) -> int:
        async with self.rt.db.read() as conn:
            return (await store.reminder_counts(conn, [space_id])).get(space_id, 0)

    async def has_reminder(self, space_id: str, user_id: str) -> bool:
        async with self.rt.db.read() as conn:
            return await store.has_reminder(conn, space_id, user_id)

    # -- changing ------------------------------------------------------------------------

    async def create(
        self,
        host: User,
        title: str,
        description: str,
        scheduled_start: datetime | None,
        allow_guests: bool,
    ) -> Room:
        now = self.rt.now()
        room = Room(
            id=new_space_id(),
            host_id=host.id,
            title=validate_title(title),
            description=validate_description(description),
            state=SpaceState.SCHEDULED,
            allow_guests=allow_guests,
            created_at=now,
            scheduled_start=(
                validate_schedule(scheduled_start, now) if scheduled_start is not None else None
            ),
        )
        room.members[host.id] = StageMember(host.id, host.display_name, Role.HOST, now)
        events: list[RoomEvent] = []
        if scheduled_start is None:
            events = room.start(host.id, now)
        async with self.rt.db.transaction() as conn:
            await store.insert_room(conn, room)
        logger.info("space %s created by %s (%s)", room.id, host.id, room.state.value)
        await self._publish(room, events)
        return room

    async def change(
        self, space_id: str, operation: Callable[[Room, datetime], list[RoomEvent]]
    ) -> tuple[Room, list[RoomEvent]]:
        """Apply one domain operation atomically and publish what it caused.

        The per-Space lock serialises writers in this process; the row lock taken by
        ``load_room(lock=True)`` does the same across processes on PostgreSQL.
        """
        lock = self._locks.setdefault(space_id, asyncio.Lock())
        async with lock:
            now = self.rt.now()
            async with self.rt.db.transaction() as conn:
                room = await store.load_room(conn, space_id, lock=True)
                if room is None:
                    raise NotFound(f"there is no Space with id {space_id!r}")
                before = room.snapshot()
                events = operation(room, now)
                await store.save_room(conn, before, room)
                for event in events:
                    if event.type == "space.state" and event.data["new"] == "live":
                        sent = await store.notify_reminded(conn, space_id, "space_started", now)
                        logger.info("space %s: reminded %d people", space_id, sent)
                if room.state in (SpaceState.ENDED, SpaceState.CANCELLED) and (
                    before.state is not room.state
                ):
                    final = await self.rt.presence.close_space(space_id)
                    await self.rt.admission.close_space(space_id)
                    await store.set_total_listeners(conn, space_id, final.total)
        if room.state in (SpaceState.ENDED, SpaceState.CANCELLED):
            self._locks.pop(space_id, None)
        await self._publish(room, events)
        return room, events

    async def _publish(self, room: Room, events: list[RoomEvent]) -> None:
        self._gates.pop(room.id, None)
        self._state_docs.pop(room.id, None)
        await self.rt.media.apply(room, events)
        for event in events:
            await self.rt.bus.publish(room.id, event.type, event.data)

    async def resume_media(self) -> int:
        """After a restart, bring back the media of Spaces that are still live."""
        if not self.rt.media.enabled:
            return 0
        async with self.rt.db.read() as conn:
            rooms = await store.list_rooms(conn, [SpaceState.LIVE], limit=10_000)
        for room in rooms:
            await self.rt.media.open(room)
        return len(rooms)

    # -- reminders -----------------------------------------------------------------------

    async def remind(self, space_id: str, user: User, on: bool) -> None:
        room = await self.get(space_id)
        authorize(room.role_of(user.id), Action.REMIND)
        room.check_not_removed(user.id)
        if on and room.state is not SpaceState.SCHEDULED:
            raise InvalidTransition(
                f"the Space is {room.state.value}; reminders are for upcoming ones"
            )
        async with self.rt.db.transaction() as conn:
            if on:
                await store.add_reminder(conn, space_id, user.id, self.rt.now())
            elif not await store.remove_reminder(conn, space_id, user.id):
                raise NotFound("you had no reminder for this Space")

    async def notifications(self, user: User, limit: int) -> list[dict[str, Any]]:
        async with self.rt.db.read() as conn:
            rows = await store.list_notifications(conn, user.id, limit)
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "space_id": r.space_id,
                "title": r.title,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    # -- listeners -----------------------------------------------------------------------

    async def _gate(self, space_id: str) -> _Gate:
        """The Space's join policy from memory; refreshed at most once per max-age.

        A crowd arrives at once, so the refresh is single-flight: one database read per
        Space per expiry, while the others keep using the previous answer (except around a
        scheduled start, see ``_max_age``, where they wait for the new one). Unknown ids
        are remembered too, so a flood of made-up ids costs one read each per max-age.
        """
        gate = self._gates.get(space_id)
        now = time.monotonic()
        max_age = self._max_age(gate) if gate is not None else 0.0
        if gate is not None and now - gate.fetched <= max_age:
            return self._checked(space_id, gate)
        fetch = self._gate_fetches.get(space_id)
        if fetch is None:
            fetch = asyncio.ensure_future(self._fetch_gate(space_id))
            self._gate_fetches[space_id] = fetch
            fetch.add_done_callback(lambda _: self._gate_fetches.pop(space_id, None))
        if gate is None or max_age < self.rt.settings.state_max_age_s:
            # nothing to go on, or watching for the start: the previous answer will not do
            gate = await asyncio.shield(fetch)
        return self._checked(space_id, gate)

    def _max_age(self, gate: _Gate) -> float:
        """How long a gate is trusted: the room state's max-age, but around the scheduled
        start of a Space not yet live only ``START_WATCH_S``: the host starts it through
        another process (the control worker), and a crowd waiting here must see it live
        at once, not up to a max-age later (one database read per worker and 100 ms)."""
        max_age = float(self.rt.settings.state_max_age_s)
        start = gate.scheduled_start if gate.state is SpaceState.SCHEDULED else None
        if start is not None and (start - self.rt.now()).total_seconds() < START_WATCH_LEAD_S:
            return min(max_age, START_WATCH_S)
        return max_age

    async def _fetch_gate(self, space_id: str) -> _Gate:
        async with self.rt.db.read() as conn:
            room = await store.load_room(conn, space_id)
        fetched = time.monotonic()
        gate = (
            _Gate(room.state, room.allow_guests, fetched, scheduled_start=room.scheduled_start)
            if room is not None
            else _Gate(SpaceState.CANCELLED, False, fetched, missing=True)
        )
        if len(self._gates) >= _MAX_GATES:  # made-up ids must not grow memory without bound
            horizon = fetched - self.rt.settings.state_max_age_s
            self._gates = {k: g for k, g in self._gates.items() if g.fetched >= horizon}
        self._gates[space_id] = gate
        return gate

    @staticmethod
    def _checked(space_id: str, gate: _Gate) -> _Gate:
        if gate.missing:
            raise NotFound(f"there is no Space with id {space_id!r}")
        return gate

    async def join(
        self,
        space_id: str,
        user: User | None,
        ticket: str | None = None,
        *,
        pow: str | None = None,
        address: str | None = None,
    ) -> Joined:
        """A listener token for ``space_id``: hot path, no database for guests.

        Over the Space's admission limits (or before it starts) the join waits in line:
        ``Queued`` with a ticket to come back with (see ``admission.waiting``). Stage
        members (host, co-hosts, speakers) are never queued. In attack mode a first join
        needs a proof of work (``pow``) unless the account has history, and joins are
        limited per client ``address`` (see ``admission.attack``).
        """
        gate = await self._gate(space_id)
        if gate.state in (SpaceState.ENDED, SpaceState.CANCELLED):
            raise InvalidTransition(f"the Space has {gate.state.value}; its live audio is over")
        if user is None:
            if not gate.allow_guests:
                raise NotAuthenticated("this Space is for signed-in listeners: log in to join")
            listener_id = GUEST_PREFIX + secrets.token_hex(8)
        else:
            async with self.rt.db.read() as conn:
                if await store.is_removed(conn, space_id, user.id):
                    raise RemovedFromSpace("you were removed from this Space and cannot rejoin it")
            listener_id = user.id
        try:
            await self.rt.attack.check_join(
                space_id,
                pow,
                address,
                first=ticket is None,
                trusted=user is not None and self.rt.attack.trusts(user, self.rt.now()),
            )
            await self.rt.admission.admit(
                space_id,
                ticket,
                live=gate.state is SpaceState.LIVE,
                starts_in_s=self._starts_in(gate),
            )
        except (Queued, TicketUsed, ProofOfWorkRequired, RateLimited):
            # Only now (rarely) look at the stage: hosts and speakers never wait, solve
            # puzzles or count against their address.
            if user is None or not await self._on_stage(space_id, user.id):
                raise
        token, expires = self.rt.listener_tokens.issue(space_id, listener_id)
        await self.rt.presence.seen(space_id, listener_id)
        return Joined(space_id, listener_id, token, expires)

    def _starts_in(self, gate: _Gate) -> float:
        if gate.state is not SpaceState.SCHEDULED or gate.scheduled_start is None:
            return 0.0
        return max(0.0, (gate.scheduled_start - self.rt.now()).total_seconds())

    async def _on_stage(self, space_id: str, user_id: str) -> bool:
        async with self.rt.db.read() as conn:
            room = await store.load_room(conn, space_id)
        return room is not None and user_id in room.members

    async def heartbeat(self, space_id: str, token: ListenerToken) -> ListenerCounts:
        if token.space_id != space_id:
            raise PermissionDenied("this listener token is for another Space")
        gate = await self._gate(space_id)
        if gate.state in (SpaceState.ENDED, SpaceState.CANCELLED):
            raise InvalidTransition(f"the Space has {gate.state.value}")
        if not token.is_guest:
            async with self.rt.db.read() as conn:
                if await store.is_removed(conn, space_id, token.listener_id):
                    raise RemovedFromSpace("you were removed from this Space")
        decision = await self.rt.local_limiter.hit(
            f"beat:{token.listener_id}", HEARTBEATS_PER_S, HEARTBEAT_BURST
        )
        if not decision.allowed:
            raise RateLimited(
                "too many heartbeats for this listener token: one every few seconds will do",
                decision.retry_after,
            )
        await self.rt.presence.seen(space_id, token.listener_id)
        return await self.rt.presence.counts(space_id)

    async def admission_document(self, space_id: str) -> dict[str, Any]:
        """What a joining client (or an edge) needs to know before it joins: whether the
        Space is in attack mode, and the proof-of-work challenge if so."""
        await self._gate(space_id)
        return await self.rt.attack.document(space_id)

    async def react(
        self,
        space_id: str,
        reaction: str,
        user: User | None,
        listener: ListenerToken | None,
    ) -> None:
        """A reaction from a signed-in person or from a listener token (guests)."""
        name = validate_reaction(reaction)
        if user is not None:
            who = user.id
            room = await self.get(space_id)
            room.check_not_removed(who)
            authorize(room.role_of(who), Action.REACT)
            state = room.state
        elif listener is not None:
            if listener.space_id != space_id:
                raise PermissionDenied("this listener token is for another Space")
            who = listener.listener_id
            state = (await self._gate(space_id)).state
            if not listener.is_guest:
                async with self.rt.db.read() as conn:
                    if await store.is_removed(conn, space_id, who):
                        raise RemovedFromSpace("you were removed from this Space")
            authorize(Role.GUEST if listener.is_guest else Role.LISTENER, Action.REACT)
        else:
            raise NotAuthenticated("join the Space and send its listener token, or log in")
        if state is not SpaceState.LIVE:
            raise InvalidTransition(f"the Space is {state.value}; reactions are for live ones")
        rate = self.rt.settings.reaction_rate
        decision = await self.rt.limiter.hit(f"react:{space_id}:{who}", rate, rate)
        if not decision.allowed:
            raise RateLimited(
                f"at most {rate:g} reactions per second; wait a moment", decision.retry_after
            )
        async with self.rt.db.transaction() as conn:
            await store.add_reaction(conn, space_id, name)
        await self.rt.bus.publish(space_id, "reaction", {"reaction": name, "from": who})

    # -- the room-state document ---------------------------------------------------------

    async def state_document(self, space_id: str) -> tuple[bytes, str]:
        """The JSON every listener polls, identical for all, rebuilt at most once per max-age."""
        cached = self._state_docs.get(space_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < max(self.rt.settings.state_max_age_s, 0.2):
            return cached[1], cached[2]
        room = await self.get(space_id)
        async with self.rt.db.read() as conn:
            reactions = await store.reaction_counts(conn, space_id)
        counts = await self.counts(room)
        levels = self.rt.media.levels(space_id)
        if not self.rt.media.enabled and room.state is SpaceState.LIVE:
            from tribune.service.media_node import read_levels  # the media runs elsewhere

            levels = await read_levels(self.rt, space_id)
        doc = {
            "id": room.id,
            "title": room.title,
            "description": room.description,
            "state": room.state.value,
            "scheduled_start": _iso(room.scheduled_start),
            "started_at": _iso(room.started_at),
            "ended_at": _iso(room.ended_at),
            "stage": [
                {**m.public(), "level": round(levels.get(m.user_id, 0.0), 2)}
                for m in room.members.values()
            ],
            "reactions": {name: reactions.get(name, 0) for name in REACTIONS},
            "listeners": counts.public(),
            "requests_pending": len(room.requests),
            "generated_at": self.rt.now().isoformat(),
        }
        body = orjson.dumps(doc)
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self._state_docs[space_id] = (now, body, etag)
        return body, etag


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
