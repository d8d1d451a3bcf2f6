"""Listener tokens and rate limits."""

from __future__ import annotations

import base64
import time

import pytest

from tribune.admission.ratelimit import MemoryRateLimiter
from tribune.admission.tokens import ListenerTokens
from tribune.exceptions import InvalidToken

SECRET = b"k" * 64


def test_round_trip():
    """A token verifies to what was issued."""
    tokens = ListenerTokens(SECRET, 60)
    token, expires = tokens.issue("space1", "g_abc")
    parsed = tokens.verify(token)
    assert (parsed.space_id, parsed.listener_id, parsed.expires_at) == ("space1", "g_abc", expires)
    assert parsed.is_guest


def test_expired_token_is_refused():
    """A token past its expiry says so."""
    tokens = ListenerTokens(SECRET, 60)
    token, _ = tokens.issue("space1", "u1", now=time.time() - 61)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)


def test_tampered_payload_is_refused():
    """Changing the Space in the payload breaks the signature."""
    tokens = ListenerTokens(SECRET, 60)
    token, _ = tokens.issue("space1", "u1")
    body, sig = token[4:].split(".")
    payload = base64.urlsafe_b64decode(body + "==").replace(b"space1", b"space2")
    forged = "tbl_" + base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + sig
    with pytest.raises(InvalidToken, match="altered"):
        tokens.verify(forged)


def test_other_secret_is_refused():
    """A token signed with another key does not verify."""
    token, _ = ListenerTokens(b"x" * 64, 60).issue("space1", "u1")
    with pytest.raises(InvalidToken):
        ListenerTokens(SECRET, 60).verify(token)


@pytest.mark.parametrize("junk", ["", "tbl_", "tbl_abc", "tbl_a.b.c", "tbt_x.y", "tbl_!!!.???"])
def test_malformed_tokens(junk: str):
    """Garbage is refused with InvalidToken, never a crash."""
    with pytest.raises(InvalidToken):
        ListenerTokens(SECRET, 60).verify(junk)


async def test_token_bucket_allows_burst_then_refuses_then_refills():
    """rate 5/s, burst 5: five pass at once, the sixth waits 0.2 s."""
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    results = [(await limiter.hit("k", 5, 5)).allowed for _ in range(6)]
    assert results == [True] * 5 + [False]
    refused = await limiter.hit("k", 5, 5)
    assert refused.retry_after == pytest.approx(0.2)
    now[0] += 0.2
    assert (await limiter.hit("k", 5, 5)).allowed
    assert (await limiter.hit("other", 5, 5)).allowed
