"""Who may do what: one table, role x action.

Every action a request can perform is an :class:`Action`; :data:`PERMISSIONS` names the
roles allowed for each. ``tests/rooms/test_permissions.py`` walks the whole table through
the HTTP API, so an action missing here is a failing test, not a silent hole.

Acting *on someone* (mute, demote, remove) additionally needs a higher rank than the
target: a co-host can mute a speaker but not the host or another co-host.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

from tribune.exceptions import PermissionDenied
from tribune.rooms.roles import Role


class Action(enum.StrEnum):
    # lifecycle
    START = "start"
    END = "end"
    CANCEL = "cancel"
    EDIT = "edit"
    # moderation of the stage
    VIEW_REQUESTS = "view_requests"
    ACCEPT_REQUEST = "accept_request"
    DENY_REQUEST = "deny_request"
    INVITE_SPEAKER = "invite_speaker"
    APPOINT_COHOST = "appoint_cohost"
    MUTE_MEMBER = "mute_member"
    DEMOTE = "demote"
    REMOVE = "remove"
    # on stage
    MUTE_SELF = "mute_self"
    LEAVE_STAGE = "leave_stage"
    PUBLISH_AUDIO = "publish_audio"
    SUBSCRIBE_EVENTS = "subscribe_events"
    # audience
    LISTEN = "listen"
    REACT = "react"
    REQUEST_TO_SPEAK = "request_to_speak"
    ANSWER_INVITATION = "answer_invitation"
    REMIND = "remind"


H, C, S, L, G = Role.HOST, Role.COHOST, Role.SPEAKER, Role.LISTENER, Role.GUEST

PERMISSIONS: MappingProxyType[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.START: frozenset({H}),
        Action.END: frozenset({H}),
        Action.CANCEL: frozenset({H}),
        Action.EDIT: frozenset({H}),
        Action.VIEW_REQUESTS: frozenset({H, C}),
        Action.ACCEPT_REQUEST: frozenset({H, C}),
        Action.DENY_REQUEST: frozenset({H, C}),
        Action.INVITE_SPEAKER: frozenset({H, C}),
        Action.APPOINT_COHOST: frozenset({H}),
        Action.MUTE_MEMBER: frozenset({H, C}),
        Action.DEMOTE: frozenset({H, C}),
        Action.REMOVE: frozenset({H, C}),
        Action.MUTE_SELF: frozenset({H, C, S}),
        Action.LEAVE_STAGE: frozenset({C, S}),
        Action.PUBLISH_AUDIO: frozenset({H, C, S}),
        Action.SUBSCRIBE_EVENTS: frozenset({H, C, S}),
        Action.LISTEN: frozenset({H, C, S, L, G}),
        Action.REACT: frozenset({H, C, S, L, G}),
        Action.REQUEST_TO_SPEAK: frozenset({L}),
        Action.ANSWER_INVITATION: frozenset({S, L}),
        Action.REMIND: frozenset({H, C, S, L}),
    }
)

_MISSING = set(Action) - set(PERMISSIONS)
if _MISSING:  # pragma: no cover - guarded by tests, fails at import if someone forgets
    raise RuntimeError(f"actions without a permission row: {sorted(_MISSING)}")


def allowed(role: Role, action: Action) -> bool:
    return role in PERMISSIONS[action]


def authorize(role: Role, action: Action) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may perform ``action``."""
    if not allowed(role, action):
        who = ", ".join(sorted(r.value for r in PERMISSIONS[action])) or "nobody"
        raise PermissionDenied(
            f"a {role.value} may not {action.value.replace('_', ' ')} in this Space "
            f"(allowed: {who})"
        )


def authorize_on(actor: Role, action: Action, target: Role) -> None:
    """Like :func:`authorize`, for actions aimed at another person: outrank the target."""
    authorize(actor, action)
    if actor.rank <= target.rank:
        raise PermissionDenied(
            f"a {actor.value} may not {action.value.replace('_', ' ')} a {target.value}"
        )
