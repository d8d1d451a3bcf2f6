"""The Space aggregate on its own: state machine, stage limits, rank rules."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from tribune.exceptions import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RemovedFromSpace,
    StageFull,
)
from tribune.rooms.roles import MAX_COHOSTS, MAX_SPEAKERS, Role
from tribune.rooms.space import (
    Room,
    SpaceState,
    StageMember,
    validate_schedule,
    validate_title,
)

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)


def room(state: SpaceState = SpaceState.LIVE) -> Room:
    r = Room("s1", "host", "Title", "", state, True, NOW)
    r.members["host"] = StageMember("host", "Host", Role.HOST, NOW)
    return r


def with_speakers(r: Room, n: int, prefix: str = "sp") -> Room:
    for i in range(n):
        r.members[f"{prefix}{i}"] = StageMember(f"{prefix}{i}", "S", Role.SPEAKER, NOW)
    return r


def test_lifecycle_passes_through_every_state_and_logs_each(caplog: pytest.LogCaptureFixture):
    """scheduled -> live -> ended, each change logged old -> new and emitted once."""
    r = room(SpaceState.SCHEDULED)
    seen = [r.state]
    with caplog.at_level(logging.INFO, logger="tribune.rooms.space"):
        for op in (r.start, r.end):
            events = op("host", NOW)
            assert [e.type for e in events] == ["space.state"]
            seen.append(r.state)
    assert seen == [SpaceState.SCHEDULED, SpaceState.LIVE, SpaceState.ENDED]
    assert [m for m in caplog.messages if "->" in m] == [
        "space s1: scheduled -> live",
        "space s1: live -> ended",
    ]
    assert r.started_at == NOW
    assert r.ended_at == NOW


@pytest.mark.parametrize(
    ("state", "op"),
    [
        (SpaceState.LIVE, "start"),
        (SpaceState.LIVE, "cancel"),
        (SpaceState.SCHEDULED, "end"),
        (SpaceState.ENDED, "start"),
        (SpaceState.ENDED, "end"),
        (SpaceState.CANCELLED, "start"),
    ],
)
def test_impossible_transitions_are_refused_and_change_nothing(state: SpaceState, op: str):
    """A transition not in the table raises and leaves the state as it was."""
    r = room(state)
    with pytest.raises(InvalidTransition):
        getattr(r, op)("host", NOW)
    assert r.state is state


def test_only_the_host_changes_the_lifecycle():
    """A co-host cannot start, end or cancel."""
    r = room(SpaceState.SCHEDULED)
    r.members["co"] = StageMember("co", "Co", Role.COHOST, NOW)
    for op in (r.start, r.cancel, r.end):
        with pytest.raises(PermissionDenied):
            op("co", NOW)
    assert r.state is SpaceState.SCHEDULED


def test_eleventh_speaker_is_refused():
    """Ten speakers fill the stage; accepting one more raises StageFull and adds nobody."""
    r = with_speakers(room(), MAX_SPEAKERS)
    r.request_to_speak("late", "Late", NOW)
    with pytest.raises(StageFull, match="10 speakers"):
        r.answer_request("host", "late", True, NOW)
    assert "late" not in r.members
    assert "late" in r.requests


def test_third_cohost_is_refused():
    """Two co-hosts is the limit, by invitation or by promotion."""
    r = with_speakers(room(), 3)
    r.appoint_cohost("host", "sp0")
    r.appoint_cohost("host", "sp1")
    assert r.count(Role.COHOST) == MAX_COHOSTS
    with pytest.raises(StageFull):
        r.appoint_cohost("host", "sp2")
    with pytest.raises(StageFull):
        r.invite("host", "someone", Role.COHOST, NOW)
    assert r.members["sp2"].role is Role.SPEAKER


def test_cohost_cannot_act_on_host_or_other_cohost():
    """Acting on someone needs a higher rank."""
    r = with_speakers(room(), 1)
    r.members["c1"] = StageMember("c1", "C1", Role.COHOST, NOW)
    r.members["c2"] = StageMember("c2", "C2", Role.COHOST, NOW)
    for target in ("host", "c2"):
        with pytest.raises(PermissionDenied):
            r.set_host_mute("c1", target, True)
        with pytest.raises(PermissionDenied):
            r.remove("c1", target)
    r.set_host_mute("c1", "sp0", True)
    assert r.members["sp0"].muted


def test_demote_steps_down_one_rank():
    """co-host -> speaker -> listener."""
    r = with_speakers(room(), 1)
    r.appoint_cohost("host", "sp0")
    r.demote("host", "sp0")
    assert r.role_of("sp0") is Role.SPEAKER
    r.demote("host", "sp0")
    assert r.role_of("sp0") is Role.LISTENER


def test_removed_user_cannot_come_back():
    """Removal clears stage, request and invitation, and blocks requests and invitations."""
    r = with_speakers(room(), 1)
    r.remove("host", "sp0")
    assert r.role_of("sp0") is Role.LISTENER
    assert "sp0" in r.removed
    with pytest.raises(RemovedFromSpace):
        r.request_to_speak("sp0", "S", NOW)
    with pytest.raises(RemovedFromSpace):
        r.invite("host", "sp0", Role.SPEAKER, NOW)


def test_self_mute_and_host_mute_are_separate():
    """A host mute holds even when the speaker unmutes themselves."""
    r = with_speakers(room(), 1)
    r.set_host_mute("host", "sp0", True)
    r.set_self_mute("sp0", False)
    assert r.members["sp0"].muted
    r.set_host_mute("host", "sp0", False)
    assert not r.members["sp0"].muted


def test_invitation_flow():
    """An invited listener accepts and lands on stage with the invited role."""
    r = room()
    r.invite("host", "bob", Role.SPEAKER, NOW)
    with pytest.raises(Conflict):
        r.invite("host", "host", Role.SPEAKER, NOW)
    r.answer_invitation("bob", True, "Bob", NOW)
    assert r.role_of("bob") is Role.SPEAKER
    with pytest.raises(NotFound):
        r.answer_invitation("bob", True, "Bob", NOW)


@pytest.mark.parametrize("title", ["", "   ", "x" * 101])
def test_bad_titles(title: str):
    """Titles are 1-100 characters after trimming."""
    with pytest.raises(InvalidInput):
        validate_title(title)


def test_title_limits_are_inclusive():
    """Exactly 100 characters is fine."""
    assert validate_title("x" * 100) == "x" * 100


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(seconds=-1), False),
        (timedelta(0), False),
        (timedelta(minutes=5), True),
        (timedelta(days=14), True),
        (timedelta(days=14, seconds=1), False),
    ],
)
def test_schedule_window(offset: timedelta, ok: bool):
    """A schedule is in the future and at most 14 days ahead."""
    if ok:
        assert validate_schedule(NOW + offset, NOW) == NOW + offset
    else:
        with pytest.raises(InvalidInput):
            validate_schedule(NOW + offset, NOW)
