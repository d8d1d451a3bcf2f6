"""Bare Starlette "join" used as this machine's ceiling by bench/join.py.

One POST route that does the least a guest join must do: it parses nothing,
makes a random listener id, signs a small payload with HMAC-SHA256 under a key
drawn at start-up, and answers 201 with a small orjson body. No database, no
middleware, no validation. Run it as uvicorn did in the benchmark:

    uvicorn ceiling_app:app --app-dir bench --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_KEY = secrets.token_bytes(32)
_TTL_SECONDS = 3600


async def join(request: Request) -> Response:
    space_id: str = request.path_params["space_id"]
    listener_id = secrets.token_urlsafe(16)
    expires_at = int(time.time()) + _TTL_SECONDS
    payload = f"{space_id}.{listener_id}.{expires_at}".encode()
    signature = hmac.new(_KEY, payload, hashlib.sha256).hexdigest()
    body = {
        "listener_id": listener_id,
        "listener_token": f"{payload.decode()}.{signature}",
        "expires_at": expires_at,
    }
    return Response(orjson.dumps(body), status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/api/spaces/{space_id}/join", join, methods=["POST"])])
