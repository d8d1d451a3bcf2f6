"""Who is asking: the client's address, as far as we can believe it."""

from __future__ import annotations

from functools import lru_cache

from starlette.types import Scope


@lru_cache(maxsize=8)
def _parse(trusted: str) -> frozenset[str]:
    return frozenset(a.strip() for a in trusted.split(",") if a.strip())


def client_address(scope: Scope, trusted_proxies: str) -> str | None:
    """The peer's address; behind a trusted proxy (an edge, TRIBUNE_TRUSTED_PROXIES), the
    last address in X-Forwarded-For (the one that proxy saw; earlier ones are whatever the
    client wrote). None when the server does not know (a test transport)."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if peer is None or peer not in _parse(trusted_proxies):
        return peer
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
            return last or peer
    return peer
