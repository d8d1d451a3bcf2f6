"""Everything a running Tribune holds, built once at start and closed once at stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import httpx
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tribune.admission.attack import AttackMode, AttackState, MemoryAttackState, Policy
from tribune.admission.pow import MemoryPowBurns, Pow, PowBurns, pow_key
from tribune.admission.ratelimit import MemoryRateLimiter, RateLimiter
from tribune.admission.tickets import Tickets
from tribune.admission.tokens import ListenerTokens
from tribune.admission.waiting import Admission, Limits, MemoryWaitingRoom, WaitingRoom
from tribune.config import Settings
from tribune.edge.config import publish_key
from tribune.events.base import EventBus
from tribune.events.memory import MemoryEventBus
from tribune.presence.base import Presence
from tribune.presence.memory import MemoryPresence
from tribune.service.edge_feed import EdgeFeed
from tribune.service.media import MediaHub
from tribune.store.db import Database

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: connections per Redis client (a worker has a few clients): plenty for Redis's 10,000
POOL_CONNECTIONS = 256
#: how long a command waits for a free connection before failing
POOL_WAIT_S = 10.0


def connect_redis(url: str) -> Redis:
    """A Redis client that survives a restart of Redis: a command on a connection Redis
    dropped reconnects and is retried (with backoff, for about 3 s) instead of failing the
    request that sent it, so a decision made just as Redis comes back still reaches the
    other workers.

    The pool *waits* for a free connection (up to ``POOL_WAIT_S``) rather than raising as
    redis-py's default pool does past its limit: at the start of a crowded Space a worker
    has hundreds of joins in flight at once, and a join that waits a few milliseconds for
    a connection is better than one answered 500 (bench/flashcrowd.py saw 171)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_CONNECTIONS,
        timeout=POOL_WAIT_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)  # closing the client closes its pool


class _Shared(NamedTuple):
    presence: Presence
    limiter: RateLimiter
    bus: EventBus
    waiting: WaitingRoom
    attack: AttackState
    burns: PowBurns


def _shared_state(settings: Settings) -> _Shared:
    """In-process state for the embedded default; Redis when ``TRIBUNE_REDIS_URL`` is set,
    so that every worker sees the same counts, limits, events and waiting rooms."""
    if not settings.redis_url:
        return _Shared(
            MemoryPresence(settings.presence_window_s, time.monotonic),
            MemoryRateLimiter(),
            MemoryEventBus(),
            MemoryWaitingRoom(settings.waiting_ticket_ttl_s),
            MemoryAttackState(),
            MemoryPowBurns(),
        )
    from tribune.admission.attack import RedisAttackState
    from tribune.admission.pow import RedisPowBurns
    from tribune.admission.redis_ratelimit import RedisRateLimiter
    from tribune.admission.redis_waiting import RedisWaitingRoom
    from tribune.events.redis import RedisEventBus
    from tribune.presence.redis import RedisPresence

    def connect() -> Redis:  # one pool each: pub/sub holds a connection of its own
        return connect_redis(settings.redis_url)  # type: ignore[arg-type]

    return _Shared(
        RedisPresence(connect(), settings.presence_window_s),
        RedisRateLimiter(connect()),
        RedisEventBus(connect()),
        RedisWaitingRoom(connect(), settings.waiting_ticket_ttl_s),
        RedisAttackState(connect()),
        RedisPowBurns(connect()),
    )


@dataclass
class Runtime:
    settings: Settings
    secret: bytes
    db: Database
    presence: Presence
    limiter: RateLimiter
    bus: EventBus
    listener_tokens: ListenerTokens
    media: MediaHub
    #: admission control at join: the limits and the waiting room
    admission: Admission
    #: attack mode: proof of work and per-address limits at join
    attack: AttackMode
    #: per-worker limits (heartbeats per listener token): a backstop behind the edges,
    #: never a round trip
    local_limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    #: Redis for what is neither presence, limits nor events (speaking levels), when set
    redis: Redis | None = None
    #: talks to the media node from an API-only worker (TRIBUNE_MEDIA_URL)
    media_client: httpx.AsyncClient | None = None
    #: wall clock (aware UTC); tests may replace it
    now: Callable[[], datetime] = field(default=utcnow)
    _closed: bool = False

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        secret = settings.resolved_secret()
        db = Database(settings.resolved_database_url())
        await db.migrate()
        shared = _shared_state(settings)
        attack = AttackMode(
            shared.attack,
            shared.burns,
            Pow(pow_key(secret)),
            Policy(
                default_mode=settings.attack_mode,
                joins_per_s=settings.attack_joins_per_s,
                hold_s=settings.attack_hold_s,
                bits=settings.pow_bits,
                trusted_age=timedelta(hours=settings.trusted_account_age_h),
                per_address_rate=settings.joins_per_address_per_s,
                per_address_burst=settings.joins_per_address_burst,
            ),
        )
        media_client = None
        if settings.media_url and not settings.media:
            media_client = httpx.AsyncClient(base_url=settings.media_url, timeout=20)
        return cls(
            redis=connect_redis(settings.redis_url) if settings.redis_url else None,
            media_client=media_client,
            settings=settings,
            secret=secret,
            db=db,
            presence=shared.presence,
            limiter=shared.limiter,
            bus=shared.bus,
            listener_tokens=ListenerTokens(secret, settings.listener_token_ttl_s),
            admission=Admission(
                shared.waiting,
                Tickets(secret, settings.waiting_ticket_ttl_s),
                shared.presence,
                Limits(settings.admit_per_s, settings.max_listeners),
                on_arrival=attack.arrived,
            ),
            attack=attack,
            media=MediaHub(
                settings.data_dir / "recordings",
                codec=settings.audio_codec,
                enabled=settings.media,
                feed=(
                    EdgeFeed(settings.edge_urls(), publish_key(secret))
                    if settings.media and settings.edge_urls()
                    else None
                ),
            ),
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.media.close()
        await self.bus.close()
        await self.presence.close()
        await self.limiter.close()
        await self.admission.close()
        await self.attack.close()
        await self.local_limiter.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.media_client is not None:
            await self.media_client.aclose()
        await self.db.close()
