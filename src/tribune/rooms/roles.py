"""Roles a person can have in a Space, highest first."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    HOST = "host"
    COHOST = "cohost"
    SPEAKER = "speaker"
    LISTENER = "listener"  # signed in, not on stage
    GUEST = "guest"  # listening without an account

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def on_stage(self) -> bool:
        return self in STAGE_ROLES


_RANK = {Role.HOST: 4, Role.COHOST: 3, Role.SPEAKER: 2, Role.LISTENER: 1, Role.GUEST: 0}
STAGE_ROLES = frozenset({Role.HOST, Role.COHOST, Role.SPEAKER})

#: Seats on the stage besides the host (X Spaces' shape: 1 + 2 + 10 = 13 voices).
MAX_COHOSTS = 2
MAX_SPEAKERS = 10
