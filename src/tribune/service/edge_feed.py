"""The media process feeds every edge's stream of every live Space.

An edge answers ``/listen/{space}/{token}`` itself, from an nchan channel per Space (see
docs/edges.md): one long response per listener, into which nginx writes each part. This
is what puts the parts into those channels: for each live Space and each edge, a task
that follows the broadcast part by part (``tribune.broadcast.stream.parts``) and POSTs
each to ``{edge}/_tribune/publish/{space}``, then DELETEs the channel when the Space ends
(which ends the listeners' responses).

One task per edge and Space, so a slow or dead edge delays only its own listeners; one
that falls out of the live window skips to the newest part. Failures are logged (at most
every 10 s per edge) and never reach the stage or the broadcast. The publish key is
derived from the origin's secret for this use alone (``tribune.edge.publish_key``);
``tribune edge-config`` writes its SHA-256 into each edge's config.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tribune.broadcast.broadcast import Broadcast
from tribune.broadcast.stream import parts
from tribune.edge.config import PUBLISH_HEADER

logger = logging.getLogger(__name__)

#: an edge slower than this for one part is skipped for that part
TIMEOUT_S = 2.0
QUIET_S = 10.0


@dataclass
class EdgeStats:
    published: int = 0
    failed: int = 0
    last_error: str = ""


class EdgeFeed:
    def __init__(self, edges: Sequence[str], key: bytes) -> None:
        self.edges = [edge.rstrip("/") for edge in edges]
        self._headers = {
            PUBLISH_HEADER: key.hex(),
            "Content-Type": "application/octet-stream",
        }
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT_S,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.stats = {edge: EdgeStats() for edge in self.edges}
        self._warned: dict[str, float] = {}

    def follow(self, space_id: str, broadcast: Broadcast) -> None:
        """Start feeding ``space_id`` to every edge (idempotent)."""
        if space_id in self._tasks:
            return
        self._tasks[space_id] = [
            asyncio.create_task(self._feed(edge, space_id, broadcast), name=f"feed {edge}")
            for edge in self.edges
        ]

    async def unfollow(self, space_id: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait for the feeds of an ended Space to say so to the edges (or give up)."""
        tasks = self._tasks.pop(space_id, [])
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        for tasks in self._tasks.values():
            for task in tasks:
                task.cancel()
        await asyncio.gather(
            *(t for ts in self._tasks.values() for t in ts), return_exceptions=True
        )
        self._tasks.clear()
        await self._client.aclose()

    async def _feed(self, edge: str, space_id: str, broadcast: Broadcast) -> None:
        url = f"{edge}/_tribune/publish/{space_id}"
        async for part in parts(broadcast, backlog=1):
            await self._send("POST", edge, url, part)
        await self._send("DELETE", edge, url, None)

    async def _send(self, method: str, edge: str, url: str, body: bytes | None) -> None:
        stats = self.stats[edge]
        try:
            resp = await self._client.request(method, url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            self._failed(edge, stats, f"{method} {url}: {type(exc).__name__} {exc}")
            return
        if resp.status_code >= 300 and not (method == "DELETE" and resp.status_code == 404):
            self._failed(edge, stats, f"{method} {url}: HTTP {resp.status_code} {resp.text[:200]}")
            return
        stats.published += method == "POST"

    def _failed(self, edge: str, stats: EdgeStats, error: str) -> None:
        stats.failed += 1
        stats.last_error = error
        now = time.monotonic()
        if now - self._warned.get(edge, 0.0) >= QUIET_S:
            self._warned[edge] = now
            logger.warning("edge feed: %s (%d failures so far)", error, stats.failed)
