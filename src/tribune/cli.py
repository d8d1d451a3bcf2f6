"""The ``tribune`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from tribune import __version__
from tribune.config import Settings


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
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
