"""The ``tribune`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from tribune import __version__
from tribune.config import SECRET_FILE, Settings


def _serve(args: argparse.Namespace) -> int:
    if args.host:
        os.environ["TRIBUNE_HOST"] = args.host
    if args.port:
        os.environ["TRIBUNE_PORT"] = str(args.port)
    if args.demo:
        os.environ["TRIBUNE_DEMO"] = "true"
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.resolved_secret()  # create data/secret.key before any worker needs it
    if settings.nice:
        os.nice(settings.nice)  # yield the CPU to the audio and the control plane
    print(
        f"Tribune {__version__} on http://{settings.host}:{settings.port}/ "
        f"(API docs at /docs; data in {settings.data_dir.resolve()})",
        flush=True,
    )
    uvicorn.run(
        "tribune.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _edge_config(args: argparse.Namespace) -> int:
    # Imported here: `tribune serve` does not need it.
    from tribune.admission.pow import pow_key
    from tribune.api.app import create_app
    from tribune.edge import EdgeConfig, Origin, listener_key, publish_key, write_edge
    from tribune.edge.config import origin_routes, part_us, ticket_key

    settings = Settings()
    if settings.secret_key is None and not (settings.data_dir / SECRET_FILE).exists():
        print(
            "tribune edge-config: no secret to derive the listener-token key from: set "
            "TRIBUNE_SECRET_KEY (or TRIBUNE_DATA_DIR) as on the origin; a new secret here "
            "would make every listener token fail at the edge",
            file=sys.stderr,
        )
        return 2
    # The origin on this machine, unless told otherwise (not the wildcard it may listen on).
    here = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    try:
        origins = tuple(Origin.parse(url) for url in (args.origin or [f"{here}:{settings.port}"]))
        secret = settings.resolved_secret()
        cfg = EdgeConfig(
            origins=origins,
            media_origin=Origin.parse(args.media_origin) if args.media_origin else origins[0],
            control_origins=tuple(Origin.parse(url) for url in args.control_origin or ()),
            space_joins=args.space_joins,
            listener_key=listener_key(secret),
            ticket_key=ticket_key(secret),
            pow_key=pow_key(secret),
            publish_key=publish_key(secret),
            cache_dir=args.cache_dir.resolve(),
            marks_dir=args.marks_dir.resolve(),
            listen=args.listen,
            rate=args.rate,
            burst=args.burst,
            api_rate=args.api_rate,
            api_burst=args.api_burst,
            join_rate=args.join_rate,
            join_burst=args.join_burst,
            token_rate=args.token_rate,
            token_burst=args.token_burst,
            token_streams=args.token_streams,
            ticket_ttl_s=settings.waiting_ticket_ttl_s,
            # What the origin serves: this version's route table (the app is only built).
            routes=origin_routes(create_app(settings)),
            rate_zone_mb=args.rate_zone_mb,
            cache_size=args.cache_size,
            part_us=part_us(settings.audio_codec),
            hold_s=args.hold_timeout,
            collapse=args.collapse,
            user=args.user,
            worker_processes=args.workers,
            worker_priority=args.worker_priority,
            worker_connections=args.worker_connections,
            pid=args.pid.resolve(),
            error_log=args.error_log,
            access_log=args.access_log.resolve() if args.access_log else None,
            njs_module=args.njs_module,
            stream=args.stream,
            stream_conns=args.stream_conns,
            nchan_module=args.nchan_module,
        )
        conf, script = write_edge(cfg, args.out)
    except ValueError as exc:  # EdgeConfigError, or a secret that is too short
        print(f"tribune edge-config: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {conf} and {script}: edge on {cfg.listen} in front of "
        f"{', '.join(str(o) for o in cfg.origins)} (audio from {cfg.media_origin}"
        + (
            f"; writes to {', '.join(str(o) for o in cfg.control_origins)}"
            if cfg.control_origins
            else ""
        )
        + "; "
        f"stream at /listen/ {'on' if cfg.stream else 'off'}); check it with: nginx -t -c {conf}",
        flush=True,
    )
    return 0


def _add_edge_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser(
        "edge-config",
        help="write an nginx config for an edge in front of origins (docs/edges.md)",
        description="Write a complete nginx.conf (and the njs script beside it) for an edge: "
        "it checks listeners' signed URLs, caches the audio and the room state for everyone, "
        "collapses identical requests into one origin fetch and rate-limits per address; "
        "it also serves the stream (/listen/: one response per listener, nchan), which the "
        "media process feeds. Joins, heartbeats and attack mode's proofs of work are checked "
        "at the edge, and only paths the origin serves reach it. The keys (listener token, "
        "waiting-room ticket, proof of work, publish) are derived from the secret in "
        "TRIBUNE_SECRET_KEY or TRIBUNE_DATA_DIR/secret.key, as on the origin; the secret "
        "itself is not written.",
    )
    edge.add_argument("--out", type=Path, required=True, help="the nginx.conf to write (mode 0600)")
    edge.add_argument(
        "--origin",
        action="append",
        metavar="URL",
        help="an origin, http://host:port (repeat for several; default: TRIBUNE_HOST:PORT)",
    )
    edge.add_argument(
        "--control-origin",
        action="append",
        metavar="URL",
        help="an origin kept for writes other than the crowd's (stage, moderation, sign-in, "
        "WHIP), so that a crowd cannot delay them (repeat for several; default: the --origin "
        "ones serve everything)",
    )
    edge.add_argument(
        "--media-origin",
        metavar="URL",
        help="the origin that makes the audio, for /hls/ (default: the first --origin)",
    )
    edge.add_argument(
        "--listen", default="0.0.0.0:8080", help="address to serve on (default 0.0.0.0:8080)"
    )
    edge.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("/var/cache/tribune-edge"),
        help="cache and temporary files (default /var/cache/tribune-edge; must exist)",
    )
    edge.add_argument("--cache-size", default="1g", help="most the cache may hold (1g)")
    edge.add_argument(
        "--marks-dir",
        type=Path,
        default=Path("/run"),
        help="where the edge remembers burned proofs of work and admitted tickets, a file "
        "each: a file system in memory (default /run; must exist)",
    )
    edge.add_argument(
        "--rate", type=int, default=30, help="HLS + room-state requests/s per address (30)"
    )
    edge.add_argument("--burst", type=int, default=60, help="... with this burst (60)")
    edge.add_argument("--api-rate", type=int, default=10, help="other requests/s per address (10)")
    edge.add_argument("--api-burst", type=int, default=30, help="... with this burst (30)")
    edge.add_argument(
        "--join-rate",
        type=int,
        default=5,
        help="joins/s per address, besides --api-rate (5; many people behind one "
        "carrier-grade NAT address share it, see docs/edges.md)",
    )
    edge.add_argument("--join-burst", type=int, default=20, help="... with this burst (20)")
    edge.add_argument(
        "--space-joins",
        type=int,
        default=32,
        help="joins per Space at the origins at once, from this edge; more get a 503 "
        "join-busy with a short Retry-After (32)",
    )
    edge.add_argument(
        "--token-rate", type=int, default=1, help="heartbeats/s per listener token (1)"
    )
    edge.add_argument("--token-burst", type=int, default=5, help="... with this burst (5)")
    edge.add_argument(
        "--rate-zone-mb",
        type=int,
        default=64,
        help="memory per rate-limit zone, about 8,000 addresses per MB (64)",
    )
    edge.add_argument(
        "--hold-timeout",
        type=float,
        default=7.0,
        help="longest wait for an object another request is fetching, seconds (7)",
    )
    edge.add_argument(
        "--collapse",
        choices=["hold", "lock"],
        default="hold",
        help="hold: waiters wait in njs (default); lock: nginx's proxy_cache_lock alone, "
        "which re-checks every 500 ms (for comparison)",
    )
    edge.add_argument("--user", help="user (and group) for worker processes when run as root")
    edge.add_argument("--workers", default="auto", help="worker processes (auto)")
    edge.add_argument(
        "--worker-priority",
        type=int,
        default=0,
        help="the workers' niceness, -20 to 19 (0; below 0 needs nginx started as root: on "
        "a machine shared with origins, -5 puts the audio the edge serves first)",
    )
    edge.add_argument(
        "--worker-connections",
        type=int,
        default=16384,
        help="connections per worker (16384; open files are set to twice that)",
    )
    edge.add_argument("--pid", type=Path, default=Path("/run/tribune-edge.pid"), help="pid file")
    edge.add_argument("--error-log", default="stderr", help="error log: stderr or a path")
    edge.add_argument("--access-log", type=Path, help="access log path (default: none)")
    edge.add_argument(
        "--njs-module",
        default="/usr/lib/nginx/modules/ngx_http_js_module.so",
        help="the njs module to load (Debian: libnginx-mod-http-js)",
    )
    edge.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="do not serve the stream (/listen/; then nchan is not needed): listeners use /hls/",
    )
    edge.add_argument(
        "--stream-conns",
        type=int,
        default=20,
        help="streams (/listen/) open at once per address (20)",
    )
    edge.add_argument(
        "--token-streams",
        type=int,
        default=3,
        help="streams (/listen/) open at once per listener token (3)",
    )
    edge.add_argument(
        "--nchan-module",
        default="/usr/lib/nginx/modules/ngx_nchan_module.so",
        help="the nchan module to load for the stream (Debian: libnginx-mod-nchan)",
    )
    edge.set_defaults(func=_edge_config)


def _cluster(args: argparse.Namespace) -> int:
    from tribune.cluster import up

    return up(args.dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tribune", description="Live audio rooms.")
    parser.add_argument("--version", action="version", version=f"tribune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run Tribune (embedded default unless configured)")
    serve.add_argument("--host", help="address to listen on (TRIBUNE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (TRIBUNE_PORT, 8000)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="also run a live demo Space with synthetic speakers (TRIBUNE_DEMO)",
    )
    serve.set_defaults(func=_serve)
    _add_edge_config(sub)
    cluster = sub.add_parser(
        "cluster",
        help="run the scaled shape on this machine: PostgreSQL, Redis, a media node, "
        "2 API workers and 2 nginx edges",
    )
    cluster.add_argument("action", choices=["up"], help="up: start it and run until Ctrl-C")
    cluster.add_argument(
        "--dir", type=Path, default=Path("cluster"), help="where its files go (./cluster)"
    )
    cluster.set_defaults(func=_cluster)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
