"""Speakers for the latency benchmark's CPU figure, in a process of their own.

    python bench/_latency_publisher.py BASE_URL SPACE_ID < tokens.json

reads a JSON list of API tokens on stdin and publishes one aiortc speaker per token to
``POST /api/spaces/SPACE_ID/whip`` (sendrecv, like a browser: each also receives its
mix-minus, which is read and dropped). Each sends a quiet tone of its own pitch, paced in
real time. Prints ``READY <n>`` once every peer is connected, then runs until SIGTERM or
SIGINT and prints ``CPU <seconds>`` (its own user+system time) on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

import httpx

from _latency_rtc import MarkerTrack, Peer


async def main(base_url: str, space_id: str, tokens: list[str]) -> int:
    peers = [
        Peer(
            MarkerTrack(None, tone_hz=200.0 + 37.0 * i, tone_amplitude=0.05),
            sendrecv=True,
        )
        for i in range(len(tokens))
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = f"{base_url}/api/spaces/{space_id}/whip"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for peer, token in zip(peers, tokens, strict=True):
                await peer.publish(client, url, {"Authorization": f"Bearer {token}"})
        await asyncio.gather(*(p.connected(30) for p in peers))
        print(f"READY {len(peers)}", flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.gather(*(p.close() for p in peers))
        times = os.times()
        print(f"CPU {times.user + times.system:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], json.load(sys.stdin))))
