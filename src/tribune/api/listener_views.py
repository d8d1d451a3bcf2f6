"""Response bodies on the listener's hot path, shared by the routes and the fast path."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from tribune.api.services import Services
from tribune.service.spaces import Joined


def join_response(services: Services, joined: Joined) -> Response:
    base = f"/api/spaces/{joined.space_id}"
    body = {
        "space_id": joined.space_id,
        "listener_id": joined.listener_id,
        "listener_token": joined.token,
        "expires_at": joined.expires_at,
        "heartbeat_interval_s": services.runtime.settings.heartbeat_interval_s,
        "urls": {
            "state": f"{base}/state",
            "heartbeat": f"{base}/heartbeat",
            "reactions": f"{base}/reactions",
            # signed for this listener: the token is part of the path (see api.routes.hls)
            "playlist": f"/hls/{joined.space_id}/{joined.token}/live.m3u8",
            # the same audio as one long response (api.routes.stream), and its init section
            "stream": f"/listen/{joined.space_id}/{joined.token}",
            "init": f"/hls/{joined.space_id}/{joined.token}/init.mp4",
        },
    }
    # orjson straight to bytes, no response model: this is the hottest write we have.
    return Response(orjson.dumps(body), status_code=201, media_type="application/json")
