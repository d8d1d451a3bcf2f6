"""Settings from ``TRIBUNE_*`` environment variables, with safe defaults.

The embedded default needs none of them: data goes to ``./data``, the database is a
SQLite file there, and a secret key is generated on first start and kept in
``data/secret.key`` (mode 0600) so tokens survive restarts.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

SECRET_FILE = "secret.key"  # noqa: S105 - a file name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUNE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("data")
    #: SQLAlchemy async URL; default is ``sqlite+aiosqlite:///<data_dir>/tribune.db``.
    database_url: str | None = None
    #: redis:// URL; when set, presence (listener counts) is shared through Redis by
    #: every worker (HyperLogLogs) instead of kept exactly in this process.
    redis_url: str | None = None
    #: In an API-only worker (TRIBUNE_MEDIA=false): the media node's internal base URL,
    #: e.g. http://10.0.0.5:8100. WHIP requests are forwarded there; control decisions
    #: reach it over Redis (TRIBUNE_REDIS_URL), as do its speaking levels.
    media_url: str | None = None
    #: In the media process: the edges' internal base URLs, comma-separated (e.g.
    #: http://10.0.0.7:8080,http://10.0.0.8:8080). Each part of every live Space is pushed
    #: to each edge's stream channel, from which the edge serves /listen/ itself.
    edges: str | None = None
    #: 32+ random bytes, hex or any string; generated and persisted when absent.
    secret_key: SecretStr | None = None
    #: Public origin (scheme://host[:port]) used in absolute URLs and the Origin check.
    public_url: str | None = None
    cookie_secure: bool = False
    log_level: str = "info"
    access_log: bool = False
    #: Niceness added to `tribune serve` at start (0-19). On a machine shared with the
    #: media process, API workers that take a crowd's joins run at 10, so that when the
    #: crowd saturates the CPU the audio and the hosts' actions still get it first.
    nice: int = Field(0, ge=0, le=19)

    max_body_bytes: int = Field(64 * 1024, ge=1024)
    session_ttl_s: int = Field(14 * 24 * 3600, ge=60)
    listener_token_ttl_s: int = Field(4 * 3600, ge=60)
    heartbeat_interval_s: int = Field(10, ge=1)
    presence_window_s: float = Field(30.0, gt=0)
    #: Reactions per second per person (token bucket; the burst equals the rate).
    reaction_rate: float = Field(5.0, gt=0)
    #: Failed log-ins allowed per username per minute before 429.
    login_attempts_per_minute: int = Field(10, ge=1)
    #: How long the room-state document may be served from memory (and by HTTP caches).
    state_max_age_s: int = Field(1, ge=0)
    # -- admission control at join (per Space; see docs/operations.md) ------------------
    #: New listeners admitted per second per Space; over it, joins wait in line with a
    #: ticket. Measured (bench/): one worker answers ~14,000 guest joins/s, but every
    #: admitted listener then opens a stream, and the Python origin streams to ~5,700
    #: listeners per core (an edge ~25,000 per core). 500/s fills the default
    #: TRIBUNE_MAX_LISTENERS in 10 s while spending under 5 % of a worker's join capacity,
    #: leaving the rest for the line's retries and the streams starting. Raise it with
    #: the capacity behind it (edges, workers).
    admit_per_s: float = Field(500.0, gt=0)
    #: Active listeners (the presence concurrent count) per Space before joins wait in
    #: line; 0 for no limit. 5,000 keeps the embedded single box (one process, the origin
    #: streaming itself at ~5,700 per core) under its measured ceiling with room for the
    #: stage and the control plane. Behind edges: about 25,000 x edge cores, less margin.
    max_listeners: int = Field(5_000, ge=0)
    #: How long a waiting-room ticket is valid after it was (re)issued; each retry while
    #: waiting renews it, and an admitted ticket's id is remembered this long.
    waiting_ticket_ttl_s: int = Field(30 * 60, ge=60)
    # -- attack mode (see docs/operations.md) --------------------------------------------
    #: ``auto``: a Space switches attack mode on by itself when its first joins pass
    #: TRIBUNE_ATTACK_JOINS_PER_S; ``on``/``off``: the operator decides (and can change it
    #: at run time: PUT /api/operator/attack-mode with TRIBUNE_OPERATOR_KEY).
    attack_mode: Literal["auto", "on", "off"] = "auto"
    #: First joins per second (arrivals without a ticket, all workers together) over
    #: which a Space goes into attack mode in ``auto``. Twice the default admission rate:
    #: a crowd that the line absorbs in its stride is not an attack.
    attack_joins_per_s: float = Field(1000.0, gt=0)
    #: How long a Space stays in attack mode after its last second over the threshold.
    attack_hold_s: float = Field(300.0, ge=1)
    #: Proof-of-work difficulty: leading zero bits of a SHA-256 (each bit doubles the
    #: work; bench/pow_browser.py measures what a browser takes).
    pow_bits: int = Field(18, ge=1, le=32)
    #: Signed-in accounts at least this old skip the proof of work.
    trusted_account_age_h: float = Field(7 * 24, ge=0)
    #: In attack mode, joins per second per client address at each API worker (a
    #: backstop for the edges' own limit), with this burst.
    joins_per_address_per_s: float = Field(5.0, gt=0)
    joins_per_address_burst: int = Field(20, ge=1)
    #: Peers whose X-Forwarded-For is believed (the edges), comma-separated addresses.
    trusted_proxies: str = "127.0.0.1,::1"
    #: Bearer key for /api/operator/... (16+ characters); unset: those endpoints are off.
    operator_key: SecretStr | None = Field(None, min_length=16)
    #: Codec of the broadcast: AAC-LC (plays everywhere) or Opus in fMP4.
    audio_codec: Literal["aac", "opus"] = "aac"
    #: Run the stage and broadcast of live Spaces in this process. Off for a pure API
    #: worker (the media then runs elsewhere).
    media: bool = True
    #: Start a demo Space with synthetic speakers (``tribune serve --demo``).
    demo: bool = False

    def edge_urls(self) -> list[str]:
        """TRIBUNE_EDGES as a list of http(s) base URLs (ValueError if one is not)."""
        urls = [u.strip().rstrip("/") for u in (self.edges or "").split(",") if u.strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")) or "/" in url.split("://", 1)[1]:
                raise ValueError(
                    f"TRIBUNE_EDGES: {url!r} is not a base URL like http://10.0.0.7:8080"
                )
        return urls

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'tribune.db'}"

    def resolved_secret(self) -> bytes:
        """The secret key: from the environment, else from ``data/secret.key``, else new."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 32:
                raise ValueError("TRIBUNE_SECRET_KEY must be at least 32 characters")
            return value.encode()
        path = self.data_dir / SECRET_FILE
        if path.exists():
            return path.read_bytes().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32).encode()
        # O_EXCL: two processes starting at once must not overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        logger.info("generated a new secret key in %s", path)
        return key
