"""Signed waiting-room tickets: a place in one Space's line, for a limited time.

Format: ``tbq_<payload>.<signature>``, both base64url without padding; the payload is
``v1:<space_id>:<ticket_id>:<kind>:<place>:<issued unix seconds>`` where ``kind`` is ``l``
(a place in the first-in-first-out line, ``place`` its 1-based number) or ``p`` (joined
before a scheduled start: the place is drawn at random when the Space starts, ``place``
is then only the order of arrival, which decides nothing). The signature is the first 16
bytes of HMAC-SHA256 under a key derived from the secret for this purpose only, so a
listener token can never pass as a ticket nor the other way round.

A ticket says nothing about whether it was used: the waiting room burns a ticket's id
when it is admitted (see ``admission.waiting``), so a copy gets its holder nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace

from tribune.admission.tokens import derive_key
from tribune.exceptions import Forbidden, Gone

PREFIX = "tbq_"
_VERSION = "v1"
_SIG_BYTES = 16
#: longest ticket string a client may send back (a real one is about 110 characters)
MAX_TICKET_CHARS = 512


class InvalidTicket(Forbidden):
    title = "Invalid ticket"


class TicketExpired(Gone):
    title = "Ticket expired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class QueueTicket:
    space_id: str
    #: random, unique: what is burned when the ticket is admitted
    ticket_id: str
    #: True: joined before the scheduled start (the place is drawn at the start)
    prestart: bool
    #: the place in line (live tickets), the order of arrival (pre-start ones)
    place: int
    issued_at: int

    def __post_init__(self) -> None:
        for name in ("space_id", "ticket_id"):
            value = getattr(self, name)
            if not value or ":" in value:
                raise ValueError(f"{name} must be non-empty and contain no ':' ({value!r})")
        if self.place < 0:
            raise ValueError("place must not be negative")


def new_ticket_id() -> str:
    return secrets.token_urlsafe(12)


class Tickets:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._key = derive_key(secret, "queue-ticket")
        self.ttl_s = ttl_s

    def sign(self, ticket: QueueTicket) -> str:
        kind = "p" if ticket.prestart else "l"
        payload = (
            f"{_VERSION}:{ticket.space_id}:{ticket.ticket_id}:{kind}:"
            f"{ticket.place}:{ticket.issued_at}"
        ).encode()
        sig = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        return f"{PREFIX}{_b64(payload)}.{_b64(sig)}"

    def renewed(self, ticket: QueueTicket, now: float | None = None) -> QueueTicket:
        """The same place with a fresh issue time: a ticket shown while waiting is renewed,
        so a long wait never outlives its ticket."""
        return replace(ticket, issued_at=int(now if now is not None else time.time()))

    def verify(self, text: str, space_id: str, now: float | None = None) -> QueueTicket:
        """The ticket, if it is ours, for ``space_id`` and not expired.

        Forged, altered or malformed: ``InvalidTicket`` (403); another Space's: 403 too;
        too old: ``TicketExpired`` (410: join again, without it).
        """
        if not text.startswith(PREFIX) or text.count(".") != 1 or len(text) > MAX_TICKET_CHARS:
            raise InvalidTicket("this is not a waiting-room ticket: join without it")
        body, _, sig_text = text[len(PREFIX) :].partition(".")
        try:
            payload, sig = _unb64(body), _unb64(sig_text)
        except (binascii.Error, ValueError):
            raise InvalidTicket("this is not a waiting-room ticket: join without it") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        if not hmac.compare_digest(sig, expected):
            raise InvalidTicket("the ticket's signature does not match: it was altered")
        try:
            version, space, ticket_id, kind, place, issued = payload.decode().split(":")
            if kind not in ("l", "p"):
                raise ValueError(kind)
            ticket = QueueTicket(space, ticket_id, kind == "p", int(place), int(issued))
        except ValueError:
            raise InvalidTicket("malformed waiting-room ticket") from None
        if version != _VERSION:
            raise InvalidTicket(f"unsupported ticket version {version!r}")
        if ticket.space_id != space_id:
            raise InvalidTicket("this ticket is for another Space")
        if ticket.issued_at + self.ttl_s <= (now if now is not None else time.time()):
            raise TicketExpired("your place in line has expired: join again, without the ticket")
        return ticket
