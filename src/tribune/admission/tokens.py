"""Signed listener tokens: who may listen to which Space until when.

Format: ``tbl_<payload>.<signature>``, both base64url without padding; the payload is
``v1:<space_id>:<listener_id>:<expiry unix seconds>`` and the signature is the first 16
bytes of HMAC-SHA256 under a key derived from the secret for this purpose only. Checking
one needs no database, so an edge (or any worker) can verify it with the key alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

from tribune.exceptions import InvalidToken

PREFIX = "tbl_"
_VERSION = "v1"
_SIG_BYTES = 16


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key per use of the secret, so one token kind can never pass as another."""
    return hmac.new(secret, b"tribune:" + purpose.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ListenerToken:
    space_id: str
    listener_id: str
    expires_at: int

    def __post_init__(self) -> None:
        for name in ("space_id", "listener_id"):
            value = getattr(self, name)
            if not value or ":" in value:
                raise ValueError(f"{name} must be non-empty and contain no ':' ({value!r})")

    @property
    def is_guest(self) -> bool:
        return self.listener_id.startswith("g_")


class ListenerTokens:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._key = derive_key(secret, "listener-token")
        self.ttl_s = ttl_s

    def issue(self, space_id: str, listener_id: str, now: float | None = None) -> tuple[str, int]:
        expires = int(now if now is not None else time.time()) + self.ttl_s
        token = ListenerToken(space_id, listener_id, expires)
        payload = f"{_VERSION}:{token.space_id}:{token.listener_id}:{expires}".encode()
        sig = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        return f"{PREFIX}{_b64(payload)}.{_b64(sig)}", expires

    def verify(self, token: str, now: float | None = None) -> ListenerToken:
        if not token.startswith(PREFIX) or token.count(".") != 1:
            raise InvalidToken("malformed listener token")
        body, _, sig_text = token[len(PREFIX) :].partition(".")
        try:
            payload, sig = _unb64(body), _unb64(sig_text)
        except (binascii.Error, ValueError):
            raise InvalidToken("malformed listener token") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        if not hmac.compare_digest(sig, expected):
            raise InvalidToken("listener token signature does not match: it was altered")
        try:
            version, space_id, listener_id, expiry = payload.decode().split(":")
            parsed = ListenerToken(space_id, listener_id, int(expiry))
        except ValueError:
            raise InvalidToken("malformed listener token") from None
        if version != _VERSION:
            raise InvalidToken(f"unsupported listener token version {version!r}")
        if parsed.expires_at <= (now if now is not None else time.time()):
            raise InvalidToken("listener token has expired: join the Space again")
        return parsed
