"""The presence interface. The embedded default keeps exact sets in memory; the scaled
backend (Redis, a later issue) implements the same Protocol and passes the same tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ListenerCounts:
    #: distinct listener ids seen within the presence window (30 s by default)
    concurrent: int
    #: distinct listener ids seen over the Space's whole life
    total: int

    def public(self) -> dict[str, int]:
        return {"concurrent": self.concurrent, "total": self.total}


class Presence(Protocol):
    async def seen(self, space_id: str, listener_id: str) -> None:
        """Record that ``listener_id`` is listening to ``space_id`` now."""

    async def counts(self, space_id: str) -> ListenerCounts: ...

    async def forget(self, space_id: str, listener_id: str) -> None:
        """Stop counting a listener as present (e.g. removed); the total keeps them."""

    async def close_space(self, space_id: str) -> ListenerCounts:
        """Drop the Space's live state and return its final counts."""

    async def close(self) -> None: ...
