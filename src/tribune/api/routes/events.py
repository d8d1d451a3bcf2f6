"""Live room events for hosts and speakers, as Server-Sent Events.

SSE rather than WebSocket: the traffic is one-way (actions go over plain HTTP), it
passes every proxy, reconnects by itself, and an EventSource sends the session cookie
under the same-origin rules as any GET, so no Origin check is needed on top of the
permission check. Listeners do not use this: they poll the cacheable room state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter
from starlette.responses import StreamingResponse

from tribune.api.auth import UserDep
from tribune.api.services import ServicesDep
from tribune.events.base import Event, SubscriptionClosed
from tribune.rooms.permissions import Action, authorize

router = APIRouter(prefix="/api/spaces", tags=["events"])

KEEPALIVE_S = 15.0


def _frame(event_type: str, data: object, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def _ends_stream(event: Event, user_id: str) -> bool:
    """After this event the subscriber may no longer listen to the push channel."""
    if event.type == "space.state":
        return event.data["new"] in ("ended", "cancelled")
    return event.type in ("stage.left", "member.removed") and event.data["user_id"] == user_id


@router.get(
    "/{space_id}/events",
    summary="Room events (hosts, co-hosts, speakers), text/event-stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(space_id: str, user: UserDep, services: ServicesDep) -> StreamingResponse:
    room = await services.spaces.get(space_id)
    authorize(room.role_of(user.id), Action.SUBSCRIBE_EVENTS)
    bus = services.runtime.bus
    spaces = services.spaces

    async def stream() -> AsyncIterator[bytes]:
        async with bus.subscribe(space_id) as subscription:
            yield b"retry: 3000\n\n"
            # Subscribed first, snapshot second: nothing can fall between the two.
            state, _ = await spaces.state_document(space_id)
            yield _frame("snapshot", orjson.loads(state))
            while True:
                try:
                    event = await subscription.get(KEEPALIVE_S)
                except SubscriptionClosed:
                    return
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                yield _frame(event.type, event.data, event.id)
                if _ends_stream(event, user.id):
                    return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
