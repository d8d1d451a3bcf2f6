"""The nginx configuration of an edge: a complete ``nginx.conf`` and the njs script beside it.

A whole ``nginx.conf`` rather than an ``http {}`` include, because an edge needs things an
include cannot set: ``load_module`` for njs, the worker and connection limits, and paths
that do not depend on the distribution's defaults. Run it with
``nginx -c /etc/tribune-edge/nginx.conf``; nothing else of the machine's nginx is used.

Only *derived* keys go into the file, never the origin's secret: the listener-token key
(``derive_key(secret, "listener-token")``), the waiting-room ticket key (``"queue-ticket"``)
and the proof-of-work seed key (``"pow-seed"``). An edge can check listener tokens, tickets
and proofs of work; a stolen edge config can forge nothing but those (rotate the secret to
revoke). Of the publish key the media process feeds the edges' streams with
(``derive_key(secret, "edge-publish")``) the file holds only a SHA-256: an edge can check
it, not send it.

What the origin serves is written in too (:func:`origin_routes`, from the app's route
table): any other path is answered ``404`` by the edge, so junk never reaches Python.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles

from tribune import __version__
from tribune.admission.tokens import derive_key
from tribune.broadcast.media import CODECS, PARTS_PER_SEGMENT, SAMPLE_RATE, CodecName

#: where Debian's libnginx-mod-http-js puts the module
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
#: ... and libnginx-mod-nchan (the stream: one long response per listener)
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
#: the njs script, a package data file copied beside the nginx.conf
SCRIPT = "tribune_edge.js"
SCRIPT_OUT = "tribune-edge.js"
#: how long the origin holds a blocking request (api.routes.hls.BLOCK_S), plus a margin
DEFAULT_HOLD_S = 7.0

Collapse = Literal["hold", "lock"]
#: errors from the origin are kept a second too: the requests waiting for that answer get
#: it at once, and a crowd cannot push a failing request through to the origin
NEGATIVE = "404 422 500 502 503 504 1s"
#: the query string of a blocking playlist request, rebuilt from its two parameters
BLOCKING_ARGS = "_HLS_msn=$arg__HLS_msn$tribune_part_arg"

#: The stream (/listen/): parts a new listener gets at once, the newest ones the edge has
#: (the origin's ``api.routes.stream.BACKLOG``). nchan keeps exactly this many per Space and
#: starts each listener at the oldest: nchan 1.3.6 (Debian 12) kills its worker when a
#: listener asks for "the last N" (``nchan_subscriber_first_message -N``) of a channel that
#: has no messages (a Space not yet fed, fed long ago, or just ended), see docs/edges.md.
STREAM_BACKLOG = 2
#: parts older than this are dropped even if no newer one came (a media process that stopped)
STREAM_MESSAGE_TIMEOUT_S = 30
#: a stream that got nothing for this long ends (a Space that ended while nobody listened
#: here, a media process that stopped): the player then asks the API what happened
STREAM_IDLE_S = 30
#: the largest part the media process may publish
PUBLISH_BODY = "256k"
#: what the edge answers itself under this prefix (never passed to an origin)
EDGE_PREFIX = "/_tribune/"
PUBLISH_HEADER = "X-Tribune-Publish-Key"
#: Retry-After when no origin answers a join: about an outage's length, so that a crowd
#: arriving during one asks about once (clients add up to a quarter of jitter)
JOIN_OUTAGE_RETRY_S = 30
#: Retry-After of a join turned away because its Space has ``space_joins`` joins at the
#: origins already: the origins are answering, only busy, so soon
JOIN_BUSY_RETRY_S = 2
#: the largest join body the edge reads: a real one (a ticket, or a proof of work) is
#: under 600 bytes; more is a 413 from the edge
JOIN_BODY = "1k"
#: heartbeats and reactions are a few bytes
SMALL_BODY = "4k"


class EdgeConfigError(ValueError):
    """An option that cannot make a working (or safe) edge; the message says which."""


_SAFE = re.compile(r"^[A-Za-z0-9_./:@+=,-]+$")
_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*( [A-Za-z_][A-Za-z0-9_.-]*)?$")
_LISTEN = re.compile(r"^(?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?[0-9]{1,5}$")
_AT_LEAST_ONE = (
    "rate",
    "api_rate",
    "join_rate",
    "token_rate",
    "rate_zone_mb",
    "worker_connections",
    "media_ttl_s",
    "stream_conns",
    "token_streams",
    "ticket_ttl_s",
    "space_joins",
)
_BURSTS = ("burst", "api_burst", "join_burst", "token_burst")
#: a path the origin serves, as an nginx regex: what origin_routes makes, and nothing that
#: could leave the quoted string it is written in
_ROUTE_PATTERN = re.compile(r"^\^/[A-Za-z0-9_./~\\\[\]^+*-]*\$$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::([A-Za-z]+))?\}")
_LITERAL = re.compile(r"^[A-Za-z0-9_./~-]*$")
#: Starlette's path converters; any other (str, float, uuid...) is one path segment
_CONVERTERS = {"path": ".+", "int": "[0-9]+"}
_SEGMENT = "[^/]+"


def _safe(value: str, what: str) -> str:
    """Refuse anything that could break out of an nginx argument (``;``, braces, ``$``...)."""
    if not _SAFE.match(value):
        raise EdgeConfigError(
            f"{what} {value!r} may only contain letters, digits and _./:@+=,- (no spaces, "
            "quotes, ';', '{', '}' or '$')"
        )
    return value


@dataclass(frozen=True)
class Origin:
    """An origin server as nginx's ``upstream`` wants it: ``host:port``."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http":
            raise EdgeConfigError(
                f"origin {url!r}: only http:// origins are supported (edges and origins "
                "talk over a private network; terminate TLS at the edge)"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise EdgeConfigError(f"origin {url!r}: give scheme://host:port only")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise EdgeConfigError(f"origin {url!r}: {exc}") from None
        host = parts.hostname
        if not host:
            raise EdgeConfigError(f"origin {url!r} has no host")
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            _safe(host, "origin host")
        return cls(host, port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Route:
    """A path the origin serves, as an anchored nginx (PCRE) regex, and the methods it
    takes there (None: any). ``origin_routes`` makes them from the app's route table."""

    pattern: str
    methods: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not _ROUTE_PATTERN.match(self.pattern):
            raise EdgeConfigError(
                f"route {self.pattern!r}: give an anchored regex (^/...$) of letters, digits "
                "and _./~-\\[]^+*"
            )
        for method in self.methods or ():
            if not _METHOD.match(method):
                raise EdgeConfigError(f"route {self.pattern!r}: method {method!r}")


def path_pattern(path: str, *, prefix: bool = False) -> str:
    """``/api/spaces/{space_id}/join`` -> ``^/api/spaces/[^/]+/join$``; ``prefix``: the
    path and anything under it (a mounted app)."""
    parts = ["^"]
    at = 0
    for param in _PARAM.finditer(path):
        parts += [_literal(path[at : param.start()]), _CONVERTERS.get(param[1], _SEGMENT)]
        at = param.end()
    parts.append(_literal(path[at:]))
    if prefix:
        parts.append("/.+")
    return "".join(parts) + "$"


def _literal(text: str) -> str:
    if not _LITERAL.match(text):
        raise EdgeConfigError(
            f"route path {text!r}: the edge's allow-list takes letters, digits and _./~- only"
        )
    return text.replace(".", r"\.")


def _flat(routes: list[BaseRoute]) -> Iterable[tuple[str, set[str] | None, BaseRoute]]:
    """(path, methods, route) of every route, through FastAPI's included routers."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x keeps included routes flat
        for route in routes:
            yield getattr(route, "path", ""), getattr(route, "methods", None), route
        return
    for context in iter_route_contexts(routes):
        yield context.path or "", context.methods, context.original_route


def origin_routes(app: Any) -> tuple[Route, ...]:
    """What ``app`` (a Starlette or FastAPI app: ``tribune.api.app.create_app()``) serves:
    one Route per path, with every method any of its routes takes there. A mounted
    directory of static files is its prefix, for GET and HEAD."""
    methods: dict[str, set[str] | None] = {}
    for path, taken, route in _flat(list(app.routes)):
        if isinstance(route, Mount):
            pattern = path_pattern(route.path, prefix=True)
            taken = {"GET", "HEAD"} if isinstance(route.app, StaticFiles) else None
        elif isinstance(route, WebSocketRoute):
            pattern, taken = path_pattern(path), {"GET"}
        elif path:
            pattern = path_pattern(path)
        else:
            continue  # a Host route, or something without a path: not served through an edge
        if pattern in methods:
            known = methods[pattern]
            methods[pattern] = None if known is None or taken is None else known | taken
        else:
            methods[pattern] = None if taken is None else set(taken)
    return tuple(
        Route(pattern, None if taken is None else frozenset(taken))
        for pattern, taken in methods.items()
    )


@dataclass(frozen=True)
class EdgeConfig:
    """Everything an edge's configuration depends on. Rates are requests per second."""

    #: any of them answers the crowd's requests (join, heartbeat, reactions, room
    #: state...) and, without ``control_origins``, everything else too
    origins: tuple[Origin, ...]
    #: the origin that makes the Spaces' audio; every /hls/ request goes there
    media_origin: Origin
    #: the derived listener-token key (32 bytes), see :func:`listener_key`
    listener_key: bytes
    #: the derived waiting-room ticket key (32 bytes), see :func:`ticket_key`
    ticket_key: bytes
    #: the derived proof-of-work seed key (32 bytes), ``admission.pow.pow_key``
    pow_key: bytes
    cache_dir: Path
    #: where njs keeps its marks (burned proofs of work, admitted tickets): an empty file
    #: each, made for every join that passes with one, so a file system in memory (/run is
    #: one on systemd machines, and only root writes there: no one can plant a link where
    #: nginx will make them). nginx makes two directories in it, named after the
    #: deployment, so that its edges on one machine share them (:meth:`marks`).
    marks_dir: Path = Path("/run")
    #: the key the media process publishes parts with (32 bytes), see :func:`publish_key`;
    #: needed when ``stream`` is on (only its SHA-256 is written)
    publish_key: bytes | None = None
    listen: str = "0.0.0.0:8080"
    #: per client address: HLS and room state (a LL-HLS player makes about 6 a second)
    rate: int = 30
    burst: int = 60
    #: per client address: everything else (join, heartbeat, reactions, pages)
    api_rate: int = 10
    api_burst: int = 30
    #: per client address: joins, besides the above (an honest client retries at most
    #: once a second; carrier-grade NAT puts many behind one address, see docs/edges.md)
    join_rate: int = 5
    join_burst: int = 20
    #: per listener token: heartbeats (a player sends one every 10 s)
    token_rate: int = 1
    token_burst: int = 5
    #: per listener token: streams open at once
    token_streams: int = 3
    #: per Space: joins this edge has passed to the origins and not yet had answered.
    #: One Space's crowd cannot fill the origins' queues (its other joins get a 503
    #: ``join-busy`` with a short Retry-After at once): other Spaces' joins, and whatever
    #: else the same origins serve, wait behind this many at most.
    space_joins: int = 32
    #: origins kept for the writes that are not the crowd's (stage and moderation,
    #: sign-in, WHIP...: every POST, PUT, PATCH, DELETE but joins, heartbeats and
    #: reactions): a crowd saturating ``origins`` cannot delay a host's mute. Empty:
    #: ``origins`` serve everything.
    control_origins: tuple[Origin, ...] = ()
    #: how long a waiting-room ticket is valid after it was (re)issued
    #: (TRIBUNE_WAITING_TICKET_TTL_S); admitted tickets are remembered as long
    ticket_ttl_s: int = 30 * 60
    #: what the origin serves (origin_routes); other paths get a 404 from the edge.
    #: None: every path is passed (``tribune edge-config`` always gives the app's)
    routes: tuple[Route, ...] | None = None
    #: shared memory per rate-limit zone; about 8,000 addresses per megabyte
    rate_zone_mb: int = 64
    cache_size: str = "1g"
    #: how long a part lasts, in microseconds (from the origin's codec): waiters aim at
    #: when the next one is due
    part_us: int = field(default_factory=lambda: part_us("aac"))
    parts_per_segment: int = PARTS_PER_SEGMENT
    #: the longest a request waits for an object another request is fetching
    hold_s: float = DEFAULT_HOLD_S
    #: how long parts, segments and init sections stay cached (the origin says a year;
    #: they are only wanted while in the live window, and a Space restarted on the origin
    #: numbers its parts from 0 again)
    media_ttl_s: int = 60
    #: "hold": waiters wait in njs for the cache file (this design); "lock": nginx's
    #: proxy_cache_lock alone, with its 500 ms re-checks (kept to measure the difference)
    collapse: Collapse = "hold"
    user: str | None = None
    worker_processes: str = "auto"
    #: nginx's worker_priority: below 0 (the master must run as root), the edge's workers
    #: get the CPU before the origins' processes on a shared machine: they serve the audio
    worker_priority: int = 0
    worker_connections: int = 16384
    pid: Path = Path("/run/tribune-edge.pid")
    error_log: str = "stderr"
    access_log: Path | None = None
    njs_module: str = NJS_MODULE
    #: serve /listen/{space}/{token}: one long response per listener, fed by the media
    #: process through /_tribune/publish/{space} (nchan)
    stream: bool = True
    #: per client address: streams open at once
    stream_conns: int = 20
    nchan_module: str = NCHAN_MODULE

    def __post_init__(self) -> None:
        if not self.origins:
            raise EdgeConfigError("give at least one origin")
        for name in ("listener_key", "ticket_key", "pow_key"):
            if len(getattr(self, name)) != 32:
                raise EdgeConfigError(f"{name} must be 32 bytes (derive_key's output)")
        if not _LISTEN.match(self.listen):
            raise EdgeConfigError(
                f"listen {self.listen!r}: give PORT, HOST:PORT or [IPv6]:PORT (e.g. 0.0.0.0:8080)"
            )
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise EdgeConfigError(f"{name} must be at least 1")
        for name in ("stream_conns", "token_streams", "space_joins"):
            if getattr(self, name) > 65535:
                raise EdgeConfigError(f"{name} must be at most 65535 (nginx's limit_conn)")
        for name in _BURSTS:
            if getattr(self, name) < 0:
                raise EdgeConfigError(f"{name} must not be negative")
        if not 50_000 <= self.part_us <= 10_000_000:
            raise EdgeConfigError("part_us must be between 50,000 and 10,000,000")
        if not 1 <= self.hold_s <= 60:
            raise EdgeConfigError("hold_s must be between 1 and 60 seconds")
        if not _SIZE.match(self.cache_size):
            raise EdgeConfigError(f"cache size {self.cache_size!r}: give e.g. 512m or 4g")
        if self.collapse not in ("hold", "lock"):
            raise EdgeConfigError("collapse must be 'hold' or 'lock'")
        if self.user is not None and not _USER.match(self.user):
            raise EdgeConfigError(f"user {self.user!r}: give USER or 'USER GROUP'")
        if self.worker_processes != "auto" and not self.worker_processes.isdigit():
            raise EdgeConfigError("worker_processes must be 'auto' or a number")
        if not -20 <= self.worker_priority <= 19:
            raise EdgeConfigError("worker_priority must be between -20 and 19 (a niceness)")
        for what, path in (
            ("cache dir", self.cache_dir),
            ("marks dir", self.marks_dir),
            ("pid file", self.pid),
        ):
            if not path.is_absolute():
                raise EdgeConfigError(f"{what} {str(path)!r} must be an absolute path")
            _safe(str(path), what)
        if self.access_log is not None:
            if not self.access_log.is_absolute():
                raise EdgeConfigError("the access log must be an absolute path")
            _safe(str(self.access_log), "access log")
        if self.error_log != "stderr":
            if not Path(self.error_log).is_absolute():
                raise EdgeConfigError("the error log must be 'stderr' or an absolute path")
            _safe(self.error_log, "error log")
        _safe(self.njs_module, "njs module")
        _safe(self.nchan_module, "nchan module")
        if self.stream and (self.publish_key is None or len(self.publish_key) != 32):
            raise EdgeConfigError(
                "the stream needs the publish key (32 bytes, publish_key(secret)); "
                "or turn the stream off"
            )

    def marks(self) -> tuple[Path, Path]:
        """The directories of burned proofs of work and of admitted tickets, named after
        the deployment (a digest of its derived ticket key): edges of one deployment on one
        machine share them, so a solution or ticket spent through one is refused by the
        others too; another deployment's edges keep apart."""
        tag = hashlib.sha256(b"tribune-edge-marks:" + self.ticket_key).hexdigest()[:10]
        base = self.marks_dir / f"tribune-edge-{tag}"
        return base.with_name(base.name + "-pow"), base.with_name(base.name + "-tickets")


def listener_key(secret: bytes) -> bytes:
    """The key listener tokens are signed with (the edge gets this, never ``secret``)."""
    return derive_key(secret, "listener-token")


def ticket_key(secret: bytes) -> bytes:
    """The key waiting-room tickets are signed with (``admission.tickets``)."""
    return derive_key(secret, "queue-ticket")


def publish_key(secret: bytes) -> bytes:
    """The key the media process publishes parts to the edges' streams with; it sends it
    as lower-case hex in ``X-Tribune-Publish-Key`` (the edge gets only its SHA-256)."""
    return derive_key(secret, "edge-publish")


def publish_key_digest(key: bytes) -> str:
    """What the edge compares the header with: SHA-256 of the key's lower-case hex."""
    return hashlib.sha256(key.hex().encode()).hexdigest()


def part_us(codec: CodecName) -> int:
    """The duration of one part of the broadcast with ``codec``, in microseconds."""
    return CODECS[codec].part_samples * 1_000_000 // SAMPLE_RATE


#: sent to every origin: HTTP/1.1 keep-alive, and who asked
PROXY_HEADERS = (
    ("Connection", '""'),
    ("Host", "$http_host"),
    ("X-Forwarded-For", "$remote_addr"),
    ("X-Forwarded-Proto", "$scheme"),
)


def headers(indent: str) -> str:
    return "\n".join(f"{indent}proxy_set_header {name} {value};" for name, value in PROXY_HEADERS)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _problem(status: int, title: str, detail: str) -> str:
    # nginx reads it in single quotes, and would expand a $
    assert not any(c in title + detail for c in "'$\\\""), detail
    slug = "-".join(title.lower().split())
    body = (
        f'{{"type":"urn:tribune:problem:{slug}","title":"{title}","status":{status},'
        f'"detail":"{detail}"}}'
    )
    return "'" + body + "'"


def _cache_location(
    name: str,
    cfg: EdgeConfig,
    *,
    comment: str,
    valid: list[str],
    lock: bool,
    args: str = '""',
    stale: str | None = None,
    background_update: bool = False,
) -> list[str]:
    lines = [
        *[f"# {line}" for line in comment.splitlines()],
        f"location {name} {{",
        # The origin gets exactly what the cache key says, nothing a client added.
        f"    set $args {args};",
        "    proxy_cache tribune_hls;",
        "    proxy_cache_key $tribune_cache_key;",
        "    proxy_ignore_headers Cache-Control Expires;",
        *[f"    proxy_cache_valid {v};" for v in valid],
    ]
    if lock:
        hold = _ms(cfg.hold_s)
        lines += [
            "    proxy_cache_lock on;",
            f"    proxy_cache_lock_timeout {hold};",
            f"    proxy_cache_lock_age {hold};",
        ]
    else:
        lines.append("    proxy_cache_lock off;")
    if stale:
        lines.append(f"    proxy_cache_use_stale {stale};")
    if background_update:
        lines.append("    proxy_cache_background_update on;")
    lines += ["    proxy_pass http://tribune_media;", "}", ""]
    return lines


def _no_store(indent: str) -> str:
    """An answer the edge makes itself: problem JSON, never stored."""
    return (
        f"{indent}default_type application/problem+json;\n"
        f"{indent}add_header Cache-Control no-store always;"
    )


def _stream_http(cfg: EdgeConfig) -> str:
    """The http-level part of the stream: nchan's memory, njs variables, the limit zone."""
    if not cfg.stream:
        return ""
    assert cfg.publish_key is not None  # checked by EdgeConfig
    return f"""
    # -- the stream: one long response per listener (nchan), fed by the media process -----
    nchan_shared_memory_size 128m;
    # nchan brings many variables: room for them all in the lookup table
    variables_hash_max_size 2048;
    js_var $tribune_stream_space;
    js_var $tribune_no_message_id;
    # Only the SHA-256 of the publish key: this file cannot be used to publish.
    js_var $tribune_publish_key_sha256 {publish_key_digest(cfg.publish_key)};
    js_set $tribune_publish_verdict tribune.publishVerdict;
    limit_conn_zone $binary_remote_addr zone=tribune_streams:{cfg.rate_zone_mb}m;
    # ... and per listener token: njs checks the token in the path and gives its listener
    # id ("" for a bad token: not counted, and refused anyway)
    js_set $tribune_stream_listener tribune.streamListener;
    limit_conn_zone $tribune_stream_listener zone=tribune_token_streams:{cfg.rate_zone_mb}m;
    limit_conn_status 429;
    limit_conn_log_level warn;
"""


def _stream_locations(cfg: EdgeConfig) -> str:
    """/listen/ and /_tribune/: the stream's locations, or answers saying it is off."""
    i = " " * 8
    not_here = _problem(404, "Not found", "nothing here: this path belongs to the edge")
    edge_only = f"""\
{i}# The edge's own paths: answered here, never passed to an origin.
{i}location {EDGE_PREFIX} {{
{_no_store(i + "    ")}
{i}    return 404 {not_here};
{i}}}
"""
    if not cfg.stream:
        off = _problem(
            404, "Not found", "this edge does not serve the stream: listen with /hls/ instead"
        )
        return f"""\
{i}# The stream is off on this edge (tribune edge-config --no-stream): players use /hls/.
{i}location /listen/ {{
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{_no_store(i + "    ")}
{i}    return 404 {off};
{i}}}

{edge_only}"""
    forbidden = _problem(
        403, "Forbidden", f"publishing needs the publish key of this edge in {PUBLISH_HEADER}"
    )
    not_allowed = _problem(405, "Method not allowed", "publish with POST, end with DELETE")
    space = "[A-Za-z0-9_-]{1,64}"
    return f"""\
{i}# The stream: /listen/{{space}}/{{listener token}} is one response per listener, into
{i}# which nginx writes every part the media process publishes (docs/edges.md). The
{i}# limits come first (streams per address, then per token), then njs checks the token
{i}# (403, 410) and hands over to nchan.
{i}location /listen/ {{
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{i}    limit_conn tribune_streams {cfg.stream_conns};
{i}    limit_conn tribune_token_streams {cfg.token_streams};
{i}    js_content tribune.listen;
{i}}}

{i}# The body: fMP4 parts (moof+mdat) back to back, starting with the newest this edge
{i}# has, then each new one; it ends when the Space does (DELETE below) or after {STREAM_IDLE_S} s
{i}# without a part. nchan keeps {STREAM_BACKLOG} parts per Space (nchan_message_buffer_length)
{i}# and a listener starts at the oldest: "first_message -{STREAM_BACKLOG}" would say the same,
{i}# but makes nchan 1.3.6 abort its worker on a channel without messages.
{i}location @tribune_stream {{
{i}    add_header Content-Type audio/mp4;
{i}    add_header Cache-Control no-store;
{i}    nchan_subscriber http-raw-stream;
{i}    nchan_channel_id $tribune_stream_space;
{i}    nchan_subscriber_first_message oldest;
{i}    nchan_subscriber_http_raw_stream_separator "";
{i}    # Where a stream starts is the edge's choice, not the client's: Last-Event-ID and
{i}    # ?last_event_id are ignored (and njs refuses If-Modified-Since / If-None-Match).
{i}    nchan_subscriber_last_message_id $tribune_no_message_id;
{i}    nchan_subscriber_timeout {STREAM_IDLE_S}s;
{i}}}

{i}# The media process publishes each part here, and DELETEs the channel when the Space
{i}# ends (which ends its listeners' responses). nchan answers 201 (delivered to listeners
{i}# here), 202 (stored, no listener yet), 200 or 404 to DELETE. No rate limit: the key
{i}# is checked (njs, by its SHA-256) before anything else.
{i}location ~ "^{EDGE_PREFIX}publish/(?<tribune_publish_space>{space})$" {{
{i}    default_type application/problem+json;
{i}    if ($tribune_publish_verdict = 403) {{
{i}        add_header Cache-Control no-store always;
{i}        return 403 {forbidden};
{i}    }}
{i}    if ($tribune_publish_verdict = 405) {{
{i}        add_header Allow "GET, POST, DELETE" always;
{i}        add_header Cache-Control no-store always;
{i}        return 405 {not_allowed};
{i}    }}
{i}    client_max_body_size {PUBLISH_BODY};
{i}    client_body_buffer_size {PUBLISH_BODY};
{i}    nchan_publisher http;
{i}    nchan_channel_id $tribune_publish_space;
{i}    nchan_message_buffer_length {STREAM_BACKLOG};
{i}    nchan_message_timeout {STREAM_MESSAGE_TIMEOUT_S}s;
{i}}}

{edge_only}"""


def _alternations(prefix: str, patterns: list[str], value: str) -> list[str]:
    """``"~^{prefix} (?:p1|p2|...)$" value;`` lines, each regex short enough for nginx's
    4 KB configuration buffer."""
    lines: list[str] = []
    chunk: list[str] = []
    for pattern in [*patterns, ""]:
        if chunk and (not pattern or sum(len(p) + 1 for p in chunk) + len(pattern) > 2000):
            lines.append(f'        "~^{prefix} (?:{"|".join(chunk)})$" {value};')
            chunk = []
        if pattern:
            chunk.append(pattern[1:-1])  # without ^ and $
    return lines


def _routes_map(cfg: EdgeConfig) -> str:
    """$tribune_route: "ok" for a method and path the origin serves, the methods it takes
    there for a path it serves (a 405), "" for anything else (a 404). A regex per method,
    then one per set of methods (one regex per route would be a hundred regexes for every
    miss: 20 us a request, measured)."""
    if cfg.routes is None:
        return ""
    by_method: dict[str, list[str]] = {}
    by_methods: dict[str, list[str]] = {}
    for route in cfg.routes:
        if route.methods is None:
            by_method.setdefault("[^ ]+", []).append(route.pattern)
            continue
        for method in sorted(route.methods):
            by_method.setdefault(method, []).append(route.pattern)
        by_methods.setdefault(", ".join(sorted(route.methods)), []).append(route.pattern)
    lines = [
        *(line for m, ps in sorted(by_method.items()) for line in _alternations(m, ps, "ok")),
        *(
            line
            for allow, ps in sorted(by_methods.items())
            for line in _alternations("[^ ]+", ps, f'"{allow}"')
        ),
    ]
    body = "\n".join(lines)
    return f"""
    # -- what the origin serves: its route table when this file was written ------------
    # (tribune.api.app's routes; write this file again when the origin changes)
    map "$request_method $uri" $tribune_route {{
        default "";
{body}
    }}
"""


def _pass_everything_else(cfg: EdgeConfig) -> str:
    """location /: what the origin serves goes to any origin; the rest is answered here."""
    i = " " * 8
    if cfg.routes is None:
        return f"""\
{i}# Everything else (pages, listings, accounts, stage and moderation, WHIP): uncached;
{i}# reads to the crowd's origins, writes to the control origins ($tribune_lane).
{i}location / {{
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{i}    proxy_pass http://$tribune_lane;
{i}}}
"""
    unknown = _problem(404, "Not found", "nothing here: not a path of this service")
    not_allowed = _problem(
        405, "Method not allowed", "this path does not take that method: see the Allow header"
    )
    return f"""\
{i}# Everything else (pages, listings, accounts, stage and moderation, WHIP): uncached;
{i}# reads to the crowd's origins, writes to the control origins ($tribune_lane); and only
{i}# what the origin serves ($tribune_route, from its route table): junk never reaches Python.
{i}location / {{
{i}    default_type application/problem+json;
{i}    if ($tribune_route = "") {{
{i}        add_header Cache-Control no-store always;
{i}        return 404 {unknown};
{i}    }}
{i}    if ($tribune_route != ok) {{
{i}        add_header Allow $tribune_route always;
{i}        add_header Cache-Control no-store always;
{i}        return 405 {not_allowed};
{i}    }}
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{i}    proxy_pass http://$tribune_lane;
{i}}}
"""


def _attack_http(cfg: EdgeConfig) -> str:
    """The http-level part of joins, heartbeats and reactions: keys, marks, limit zones."""
    pow_marks, ticket_marks = cfg.marks()
    zone_mb = cfg.rate_zone_mb
    return f"""
    # -- joins, waiting-room tickets, proofs of work, heartbeats (njs) -----------------
    # Derived keys only: tickets and proof-of-work seeds can be checked, not made elsewhere.
    js_var $tribune_ticket_key {cfg.ticket_key.hex()};
    js_var $tribune_ticket_ttl {cfg.ticket_ttl_s};
    js_var $tribune_pow_key {cfg.pow_key.hex()};
    js_var $tribune_ticket_marks {ticket_marks};
    js_var $tribune_pow_marks {pow_marks};
    # the id of the ticket a passed join carried, for the answer's header filter
    js_var $tribune_join_ticket;
    # the listener id of a valid "Authorization: Bearer tbl_..." for the path's Space
    js_set $tribune_bearer_listener tribune.bearerListener;
    limit_req_zone $binary_remote_addr zone=tribune_joins:{zone_mb}m rate={cfg.join_rate}r/s;
    limit_req_zone $tribune_bearer_listener zone=tribune_tokens:{zone_mb}m rate={cfg.token_rate}r/s;
    # joins in flight to the origins, per Space (only those njs passed: limit_conn runs
    # in the named locations it redirects to, after the body was read and checked)
    map $uri $tribune_join_space {{
        default "";
        "~^/api/spaces/([^/]+)/join$" $1;
    }}
    limit_conn_zone $tribune_join_space zone=tribune_space_joins:{zone_mb}m;
"""


def _attack_locations(cfg: EdgeConfig) -> str:
    """Join, heartbeat, reactions and the admission document: checked here first."""
    i = " " * 8
    small = (
        f"{i}    client_max_body_size {SMALL_BODY};\n"
        f"{i}    client_body_buffer_size {SMALL_BODY};\n"
        f"{i}    error_page 413 = @tribune_too_large;"
    )
    get_only = _problem(405, "Method not allowed", "this path takes GET and HEAD only")
    stale = "updating error timeout http_500 http_502 http_503 http_504"
    admission_cache = f"""{i}    proxy_cache tribune_state;
{i}    proxy_cache_key /api/spaces/$tribune_admission_space/admission;
{i}    # The origin says max-age=1, and no-store on a 404 (an unknown Space): a second both.
{i}    proxy_ignore_headers Cache-Control Expires;
{i}    proxy_cache_valid 200 404 1s;
{i}    proxy_cache_lock on;
{i}    proxy_cache_lock_timeout 2s;
{i}    proxy_cache_use_stale {stale};
{i}    proxy_cache_background_update on;
{i}    proxy_pass_request_body off;
{headers(i + "    ")}
{i}    proxy_set_header Content-Length "";
{i}    proxy_set_header Content-Type "";
{i}    proxy_set_header Cookie "";
{i}    proxy_set_header Authorization "";
{i}    proxy_pass http://tribune_api/api/spaces/$tribune_admission_space/admission;"""
    space = "[A-Za-z0-9_-]{1,64}"
    join_unavailable = _problem(
        503,
        "Join unavailable",
        f"joining is briefly unavailable: come back in {JOIN_OUTAGE_RETRY_S} seconds "
        "(listeners already in keep listening)",
    )
    join_busy = _problem(
        503,
        "Join busy",
        f"so many people are joining this Space that it takes a moment: join again in "
        f"{JOIN_BUSY_RETRY_S} seconds, with your ticket if you have one (it keeps your place)",
    )
    busy_s = JOIN_BUSY_RETRY_S
    space_limit = (
        f"{i}    limit_conn tribune_space_joins {cfg.space_joins};\n"
        f"{i}    limit_conn_status 503;\n"
        f"{i}    limit_conn_log_level info;\n"
        f"{i}    error_page 502 504 = @tribune_join_unavailable;\n"
        f"{i}    error_page 503 = @tribune_join_busy;"
    )
    return f"""\
{i}# Joins: njs reads the body (a kilobyte at most), checks it, a waiting-room ticket and,
{i}# in attack mode (the Space's admission document says), a proof of work; it answers
{i}# what fails as the origin would and passes the rest (@tribune_join). Per address: the
{i}# join limit and the general one.
{i}location ~ ^/api/spaces/[^/]+/join$ {{
{i}    limit_req zone=tribune_joins burst={cfg.join_burst} nodelay;
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{i}    client_max_body_size {JOIN_BODY};
{i}    client_body_buffer_size {JOIN_BODY};
{i}    error_page 413 = @tribune_too_large;
{i}    js_content tribune.join;
{i}}}

{i}# No origin answers (all down, or all overloaded): 503 with a Retry-After as long as a
{i}# typical outage, never a bare 502, after which clients would back off from a second
{i}# and a crowd would come back several times while the origins are away. A Space with
{i}# {cfg.space_joins} joins at the origins already: 503 join-busy, come back in {busy_s} s
{i}# (the origins' queues stay short: other Spaces' joins and the rest get through).
{i}location @tribune_join {{
{space_limit}
{i}    proxy_pass http://tribune_api;
{i}}}

{i}# ... a join with a ticket: admitted (201) or already used (409), the edge remembers it.
{i}location @tribune_join_ticket {{
{space_limit}
{i}    js_header_filter tribune.joinAnswered;
{i}    proxy_pass http://tribune_api;
{i}}}

{i}location @tribune_join_busy {{
{i}    default_type application/problem+json;
{i}    add_header Retry-After {JOIN_BUSY_RETRY_S} always;
{i}    add_header Cache-Control no-store always;
{i}    return 503 {join_busy};
{i}}}

{i}location @tribune_join_unavailable {{
{i}    default_type application/problem+json;
{i}    add_header Retry-After {JOIN_OUTAGE_RETRY_S} always;
{i}    add_header Cache-Control no-store always;
{i}    return 503 {join_unavailable};
{i}}}

{i}# Heartbeats: a valid listener token for the Space (njs: 401, 403, 410), then at most
{i}# {cfg.token_rate}/s per token (burst {cfg.token_burst}); the token's key is evaluated only
{i}# for what the per-address limit let through.
{i}location ~ ^/api/spaces/[^/]+/heartbeat$ {{
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{i}    limit_req zone=tribune_tokens burst={cfg.token_burst} nodelay;
{i}    error_page 429 = @tribune_too_many_beats;
{small}
{i}    js_content tribune.heartbeat;
{i}}}

{i}# Reactions: a listener token must be valid; session cookies and API tokens pass.
{i}location ~ ^/api/spaces/[^/]+/reactions$ {{
{i}    limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
{small}
{i}    js_content tribune.react;
{i}}}

{i}location @tribune_api {{
{i}    proxy_pass http://tribune_api;
{i}}}

{i}# The admission document (attack mode, the challenge): one per Space and second for the
{i}# whole edge, for browsers that start solving early ...
{i}# (Only ids the origin could have made: the id goes into proxy_pass unescaped. Others go
{i}# on to location /, which passes the request's own URI.)
{i}location ~ "^/api/spaces/(?<tribune_admission_space>{space})/admission$" {{
{i}    limit_req zone=tribune_listeners burst={cfg.burst} nodelay;
{i}    default_type application/problem+json;
{i}    if ($request_method !~ ^(GET|HEAD)$) {{
{i}        add_header Allow "GET, HEAD" always;
{i}        add_header Cache-Control no-store always;
{i}        return 405 {get_only};
{i}    }}
{admission_cache}
{i}}}

{i}# ... and for njs, which asks it before an anonymous join (a subrequest: the same cached
{i}# copy; its $request_method would be the join's, hence a location of its own).
{i}location ~ "^{EDGE_PREFIX}admission/(?<tribune_admission_space>{space})$" {{
{i}    internal;
{i}    error_page 404 = @tribune_edge_only;
{admission_cache}
{i}}}
"""


def render_nginx_conf(cfg: EdgeConfig, script: Path) -> str:
    """The whole nginx.conf; ``script`` is where the njs file will be."""
    _safe(str(script), "script path")
    cache = cfg.cache_dir
    pow_marks, ticket_marks = cfg.marks()
    hold_ms = round(cfg.hold_s * 1000)
    user = (
        f"user {cfg.user};"
        if cfg.user
        else "# user: nginx's default (run as root, workers as nobody)"
    )
    access = f"access_log {cfg.access_log} tribune_edge;" if cfg.access_log else "access_log off;"
    # Never taken out of rotation for errors: under a crowd a few resets are load, not
    # death, and with every origin out for fail_timeout the edge answered 502 to everyone
    # (bench/flashcrowd.py). A dead origin refuses at once; nginx then tries the next.
    api = "\n".join(f"        server {o} max_fails=0;" for o in cfg.origins)
    control = "\n".join(
        f"        server {o} max_fails=0;" for o in cfg.control_origins or cfg.origins
    )
    control_note = (
        "origins of its own,\n    # so that a crowd filling the others' queues cannot delay a host"
        if cfg.control_origins
        else "the same origins\n    # (tribune edge-config --control-origin gives it its own)"
    )
    media_ttl = f"{cfg.media_ttl_s}s"
    stale_media = "updating error timeout http_500 http_502 http_503 http_504"
    zone_mb = cfg.rate_zone_mb
    nchan = f"load_module {cfg.nchan_module};\n" if cfg.stream else ""

    locations: list[str] = []
    locations += _cache_location(
        "@tribune_playlist",
        cfg,
        comment="Playlists without blocking parameters (a player's first load, plain-HLS "
        "players).\nnginx counts in whole seconds: 1 s, refreshed in the background while "
        "the old copy\nis served, so the origin sees about one a second per edge.",
        valid=["200 1s", "404 1s"],
        lock=True,
        stale=stale_media,
        background_update=True,
    )
    locations += _cache_location(
        "@tribune_fill_playlist",
        cfg,
        comment="A blocking playlist nobody has fetched yet: the origin holds it until the "
        "part exists.\nKept 2 s: right forever (it lists that part), but an answer the "
        "origin gave up on\n(6 s without the part) must not linger. The lock is only a "
        "safety net: njs sends\none request per object here and keeps the others waiting "
        "itself.",
        valid=["200 2s", NEGATIVE],
        lock=True,
        args=BLOCKING_ARGS,
    )
    locations += _cache_location(
        "@tribune_cached_playlist",
        cfg,
        comment="... and once it is cached. No lock: a request that raced the cache's "
        "bookkeeping\nshould fetch again rather than sleep 500 ms.",
        valid=["200 2s", NEGATIVE],
        lock=False,
        args=BLOCKING_ARGS,
        stale="updating",
    )
    locations += _cache_location(
        "@tribune_fill_media",
        cfg,
        comment="Parts, segments and init sections nobody has fetched yet (immutable at the "
        "origin;\nkept while they can be in the live window: a Space restarted on the "
        "origin numbers\nits parts from 0 again).",
        valid=[f"200 {media_ttl}", NEGATIVE],
        lock=True,
    )
    locations += _cache_location(
        "@tribune_cached_media",
        cfg,
        comment="... and once they are cached.",
        valid=[f"200 {media_ttl}", NEGATIVE],
        lock=False,
        stale="updating",
    )
    named = "\n".join(f"        {line}" if line else "" for line in locations[:-1])

    too_many = _problem(
        429,
        "Too many requests",
        "too many requests from this address: slow down and retry in a second",
    )
    too_many_beats = _problem(
        429,
        "Too many requests",
        "too many heartbeats from this address or listener token: one every few seconds will do",
    )
    too_large = _problem(413, "Payload too large", "request body is larger than this path takes")
    edge_only = _problem(404, "Not found", "nothing here: this path belongs to the edge")
    get_only = _problem(405, "Method not allowed", "this path takes GET only")
    return f"""\
# Tribune edge, written by `tribune edge-config` (Tribune {__version__}).
# Regenerate it rather than edit it. It holds the key listener tokens are signed with
# (derived from the origin's secret for that use alone): keep this file private.
# Run: nginx -c THIS_FILE      Test: nginx -t -c THIS_FILE       See docs/edges.md.

load_module {cfg.njs_module};
{nchan}{user}
worker_processes {cfg.worker_processes};
worker_priority {cfg.worker_priority};
# Every request outside the edge's own locations is matched against the origin's routes.
pcre_jit on;
worker_rlimit_nofile {cfg.worker_connections * 2};
pid {cfg.pid};
error_log {cfg.error_log} warn;

events {{
    worker_connections {cfg.worker_connections};
}}

http {{
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 10000;
    client_max_body_size 128k;
    default_type application/octet-stream;
    client_body_temp_path {cache}/body-temp;
    proxy_temp_path {cache}/proxy-temp;
    # fastcgi, uwsgi and scgi are never used: these lines only make nginx create, for its
    # workers, the directories where njs keeps its marks (tribune-edge.js): burned proofs
    # of work and admitted waiting-room tickets (in memory: a file is made for every join
    # that passes with one), and an empty file per object being fetched.
    fastcgi_temp_path {pow_marks};
    uwsgi_temp_path {ticket_marks};
    scgi_temp_path {cache}/claims;

    # Never log a listener token: $tribune_log_uri has it replaced by "-".
    log_format tribune_edge '$remote_addr [$time_iso8601] t=$msec '
                            '"$request_method $tribune_log_uri" $status $body_bytes_sent '
                            '$request_time cache=$upstream_cache_status upstream=$upstream_addr '
                            'upstream_time=$upstream_response_time waited=$tribune_waited '
                            'upstream_status=$upstream_status';
    {access}

    # -- listener tokens and request collapsing (njs) ------------------------------------
    js_import tribune from {script};
    js_var $tribune_listener_key {cfg.listener_key.hex()};
    js_var $tribune_cache_root {cache}/hls;
    js_var $tribune_claims {cache}/claims;
    js_var $tribune_part_us {cfg.part_us};
    js_var $tribune_parts_per_segment {cfg.parts_per_segment};
    js_var $tribune_hold_ms {hold_ms};
    js_var $tribune_collapse {cfg.collapse};
    js_var $tribune_waited;
    js_set $tribune_cache_key tribune.cacheKey;
    js_set $tribune_log_uri tribune.logUri;
    map $arg__HLS_part $tribune_part_arg {{
        "" "";
        default "&_HLS_part=$arg__HLS_part";
    }}

    # Keys carry no token: every listener shares one copy.
    proxy_cache_path {cache}/hls levels=1:2 keys_zone=tribune_hls:64m max_size={cfg.cache_size}
                     inactive=2m use_temp_path=off;
    proxy_cache_path {cache}/state levels=1:2 keys_zone=tribune_state:8m max_size=256m
                     inactive=1m use_temp_path=off;

    # -- rate limits per client address ---------------------------------------------------
    limit_req_zone $binary_remote_addr zone=tribune_listeners:{zone_mb}m rate={cfg.rate}r/s;
    limit_req_zone $binary_remote_addr zone=tribune_api:{zone_mb}m rate={cfg.api_rate}r/s;
    limit_req_status 429;
    limit_req_log_level warn;
{_attack_http(cfg)}{_stream_http(cfg)}{_routes_map(cfg)}
    # -- origins --------------------------------------------------------------------------
    # The crowd's requests (joins, heartbeats, reactions, room state, events): any of
    # these origins will do.
    upstream tribune_api {{
{api}
        keepalive 64;
    }}
    # Every other write (stage and moderation, sign-in, WHIP...): {control_note}
    upstream tribune_control {{
{control}
        keepalive 32;
    }}
    # Requests outside the edge's own locations: reads (pages, listings, a Space's details)
    # scale with the crowd, writes are people acting.
    map $request_method $tribune_lane {{
        default tribune_control;
        GET tribune_api;
        HEAD tribune_api;
    }}
    # The audio: the origin that makes it. One media origin for now (docs/edges.md).
    upstream tribune_media {{
        server {cfg.media_origin} max_fails=0;
        keepalive 64;
    }}

    proxy_http_version 1.1;
{headers("    ")}
    proxy_connect_timeout 3s;
    proxy_send_timeout 20s;
    proxy_read_timeout {round(cfg.hold_s) + 10}s;

    server {{
        listen {cfg.listen} backlog=4096;
        server_name _;

        add_header X-Cache-Status $upstream_cache_status always;
        add_header X-Edge-Waited $tribune_waited always;
        error_page 429 = @tribune_too_many;

        # LL-HLS. /hls/{{space}}/{{listener token}}/{{file}}: njs checks the token (403, 410)
        # and routes the request to one of the named locations below.
        location /hls/ {{
            limit_req zone=tribune_listeners burst={cfg.burst} nodelay;
            js_content tribune.hls;
        }}

        # The room state: the same document for everyone, as long as the origin says
        # (max-age), refreshed in the background while the old copy is served.
        location ~ ^/api/spaces/[^/]+/state$ {{
            limit_req zone=tribune_listeners burst={cfg.burst} nodelay;
            default_type application/problem+json;  # for the 405 (proxied answers keep theirs)
            if ($request_method !~ ^(GET|HEAD)$) {{
                add_header Allow "GET" always;
                add_header Cache-Control no-store always;
                return 405 {get_only};
            }}
            proxy_cache tribune_state;
            proxy_cache_key $uri;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 2s;
            proxy_cache_use_stale {stale_media};
            proxy_cache_background_update on;
            # (a location that sets a header inherits none: all of them again)
{headers("            ")}
            proxy_set_header Cookie "";
            proxy_set_header Authorization "";
            proxy_pass http://tribune_api;
        }}

        # Live events (Server-Sent Events) for the stage: streamed, never buffered.
        location ~ ^/api/spaces/[^/]+/events$ {{
            limit_req zone=tribune_api burst={cfg.api_burst} nodelay;
            default_type application/problem+json;
            if ($request_method != GET) {{
                add_header Allow "GET" always;
                add_header Cache-Control no-store always;
                return 405 {get_only};
            }}
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_pass http://tribune_api;
        }}

        # The edge itself is up (for load balancers; the origin's is /api/health).
        location = /edge-health {{
            access_log off;
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}

{_attack_locations(cfg)}
{_stream_locations(cfg)}
{_pass_everything_else(cfg)}
        location @tribune_too_many {{
            default_type application/problem+json;
            add_header Retry-After 1 always;
            add_header Cache-Control no-store always;
            return 429 {too_many};
        }}

        location @tribune_too_many_beats {{
            default_type application/problem+json;
            add_header Retry-After 1 always;
            add_header Cache-Control no-store always;
            return 429 {too_many_beats};
        }}

        location @tribune_too_large {{
            default_type application/problem+json;
            add_header Cache-Control no-store always;
            return 413 {too_large};
        }}

        location @tribune_edge_only {{
            default_type application/problem+json;
            add_header Cache-Control no-store always;
            return 404 {edge_only};
        }}

{named}
    }}
}}
"""


def write_edge(cfg: EdgeConfig, out: Path) -> tuple[Path, Path]:
    """Write ``out`` (nginx.conf, mode 0600: it holds the key) and the njs script beside it."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    script = out.parent / SCRIPT_OUT
    script.write_bytes(resources.files("tribune.edge").joinpath(SCRIPT).read_bytes())
    text = render_nginx_conf(cfg, script)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    return out, script
