"""Edges: nginx in front of the origin, written by ``tribune edge-config``.

An edge checks listeners' signed URLs itself (njs, with the derived listener-token key
only), caches the LL-HLS presentation and the room state under token-free keys, collapses
identical requests into one origin fetch without nginx's 500 ms lock polling, and
rate-limits per client address. It also serves the stream, ``/listen/{space}/{token}``: one
long response per listener into which nginx (nchan) writes every part the media process
publishes to it. ``docs/edges.md`` says why each choice was made.
"""

from tribune.edge.config import (
    EdgeConfig,
    EdgeConfigError,
    Origin,
    listener_key,
    publish_key,
    render_nginx_conf,
    write_edge,
)

__all__ = [
    "EdgeConfig",
    "EdgeConfigError",
    "Origin",
    "listener_key",
    "publish_key",
    "render_nginx_conf",
    "write_edge",
]
