"""A demo Space that plays without a microphone: two synthetic speakers take turns.

``tribune serve --demo`` (what ``make run`` starts) makes sure a live Space hosted by
``demo_host`` exists, with two speakers on stage whose voices are generated here: a
hummed, vowel-like tone with vibrato and syllable rhythm, one voice at a time, so the
stage's "who is talking" moves and a newcomer hears something within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import numpy as np

from tribune.exceptions import AlreadyExists
from tribune.rooms.roles import Role
from tribune.rooms.space import Room, RoomEvent, SpaceState
from tribune.service.accounts import Accounts
from tribune.service.spaces import Spaces
from tribune.store import spaces as space_store
from tribune.store.users import User

logger = logging.getLogger(__name__)

RATE = 48_000
DEMO_TITLE = "Tribune demo: two synthetic voices"


@dataclass(frozen=True)
class Voice:
    username: str
    display_name: str
    pitch_hz: float
    #: which half of the 8-second cycle this voice talks in
    turn: int


VOICES = (
    Voice("demo_alto", "Alto (synthetic)", 220.0, 0),
    Voice("demo_tenor", "Tenor (synthetic)", 147.0, 1),
)
CYCLE_S = 8.0


def voice_source(voice: Voice) -> Callable[[int], np.ndarray]:
    """A sample generator: call with n, get the next n samples (float32, mono, 48 kHz)."""
    position = 0
    phase = 0.0  # carried across calls so the waveform is continuous
    harmonics = (1.0, 0.5, 0.35, 0.2, 0.1)

    def next_samples(n: int) -> np.ndarray:
        nonlocal position, phase
        t = (position + np.arange(n)) / RATE
        position += n
        # Talk in this voice's half of the cycle, silence in the other half.
        talking = np.floor((t % CYCLE_S) / (CYCLE_S / 2)) == voice.turn
        # Syllables: a 4 Hz rise and fall; a little vibrato keeps it alive.
        syllables = np.sqrt(np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None))
        pitch = voice.pitch_hz * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        phases = phase + 2 * np.pi * np.cumsum(pitch) / RATE
        phase = float(phases[-1] % (2 * np.pi))
        tone = np.zeros(n)
        for k, amplitude in enumerate(harmonics):
            tone += amplitude * np.sin((k + 1) * phases)
        out: np.ndarray = (0.18 * talking * syllables * tone).astype(np.float32)
        return out

    return next_samples


async def _user(accounts: Accounts, username: str, display_name: str) -> User:
    # A random password nobody knows: these accounts exist only to be on stage.
    with contextlib.suppress(AlreadyExists):
        await accounts.sign_up(username, secrets.token_urlsafe(24), display_name)
    return await accounts.user_by_username(username)


def _invite(host_id: str, user_id: str, room: Room, now: datetime) -> list[RoomEvent]:
    return room.invite(host_id, user_id, Role.SPEAKER, now)


def _accept(user: User, room: Room, now: datetime) -> list[RoomEvent]:
    return room.answer_invitation(user.id, True, user.display_name, now)


async def ensure_demo(accounts: Accounts, spaces: Spaces) -> str:
    """Make sure the demo Space is live with its synthetic speakers; return its id."""
    host = await _user(accounts, "demo_host", "Tribune demo")
    voices = [(v, await _user(accounts, v.username, v.display_name)) for v in VOICES]
    async with spaces.rt.db.read() as conn:
        live = await space_store.list_rooms(conn, [SpaceState.LIVE], limit=10_000)
    room = next((r for r in live if r.host_id == host.id and r.title == DEMO_TITLE), None)
    if room is None:
        room = await spaces.create(
            host,
            DEMO_TITLE,
            "Synthetic speakers so you can hear Tribune without a mic.",
            None,
            True,
        )
    for _, user in voices:
        if room.role_of(user.id) is Role.LISTENER:
            await spaces.change(room.id, partial(_invite, host.id, user.id))
            room, _ = await spaces.change(room.id, partial(_accept, user))
    media = spaces.rt.media.get(room.id) or await spaces.rt.media.open(room)
    for voice, user in voices:
        media.stage.add_local_source(user.id, voice_source(voice))
    logger.info("demo Space %s is live with %d synthetic speakers", room.id, len(voices))
    return room.id
