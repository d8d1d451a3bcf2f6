"""Every error Tribune raises on purpose, one tree.

```
TribuneError
 ├── InvalidInput              422  the request is well-formed but says something impossible
 │    ├── stage.BadOffer       422  an SDP offer we cannot take (not SDP, no audio, no Opus)
 │    ├── broadcast.BadBlockingRequest, broadcast.BadClipRange, api.routes.hls.BadHLSRequest
 ├── NotAuthenticated          401  no credentials, or credentials we cannot accept
 │    └── InvalidToken         401  a token that is tampered with, malformed or expired
 ├── Forbidden                 403
 │    ├── PermissionDenied     403  the role may not perform the action (rooms.permissions)
 │    ├── CSRFFailed           403  cookie-authenticated write without a matching CSRF token
 │    ├── RemovedFromSpace     403  a removed user tries to come back
 │    └── ProofOfWorkRequired  403  attack mode: solve the challenge, then join again
 ├── NotFound                  404
 ├── Conflict                  409
 │    └── admission.waiting.TicketUsed  409  a waiting-room ticket that was already admitted
 │    ├── InvalidTransition    409  e.g. starting a Space that has ended
 │    ├── StageFull            409  a third co-host, an eleventh speaker (and stage.TooManySessions)
 │    └── AlreadyExists        409  e.g. a username that is taken
 ├── Gone                      410  e.g. admission.tickets.TicketExpired: join again
 ├── PayloadTooLarge           413
 ├── UnsupportedMediaType      415
 ├── RateLimited               429  carries ``retry_after`` seconds
 └── ServiceUnavailable        503  a part of the deployment this needs cannot be reached
      └── Queued               503  the waiting room: a place in line, a ticket, Retry-After
```
The HTTP layer maps each class to its status in one place (``api.problems``); the domain
never mentions HTTP.
"""

from __future__ import annotations

from typing import Any


class TribuneError(Exception):
    """Base class. ``detail`` is a sentence a person can act on."""

    title = "Request failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(TribuneError):
    title = "Invalid input"


class NotAuthenticated(TribuneError):
    title = "Not authenticated"


class InvalidToken(NotAuthenticated):
    title = "Invalid token"


class Forbidden(TribuneError):
    title = "Forbidden"


class PermissionDenied(Forbidden):
    title = "Permission denied"


class CSRFFailed(Forbidden):
    title = "CSRF check failed"


class RemovedFromSpace(Forbidden):
    title = "Removed from this Space"


class ProofOfWorkRequired(Forbidden):
    """Attack mode: an anonymous join must carry a solved ``challenge`` (admission.pow)."""

    title = "Proof of work required"

    def __init__(self, detail: str, challenge: dict[str, Any]) -> None:
        super().__init__(detail)
        self.challenge = challenge


class NotFound(TribuneError):
    title = "Not found"


class Conflict(TribuneError):
    title = "Conflict"


class InvalidTransition(Conflict):
    title = "Invalid state transition"


class StageFull(Conflict):
    title = "Stage is full"


class AlreadyExists(Conflict):
    title = "Already exists"


class Gone(TribuneError):
    title = "Gone"


class PayloadTooLarge(TribuneError):
    title = "Payload too large"


class UnsupportedMediaType(TribuneError):
    title = "Unsupported media type"


class RateLimited(TribuneError):
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(TribuneError):
    title = "Service unavailable"


class Queued(ServiceUnavailable):
    """Over the Space's admission limits: wait in line and come back with ``ticket``."""

    title = "Waiting room"

    def __init__(
        self,
        detail: str,
        *,
        ticket: str,
        position: int,
        estimated_wait_s: float,
        retry_after: int,
        prestart: bool,
    ) -> None:
        super().__init__(detail)
        self.ticket = ticket
        self.position = position
        self.estimated_wait_s = estimated_wait_s
        self.retry_after = retry_after
        self.prestart = prestart
