"""Speakers for the latency benchmark's CPU figure, in a process of their own.

    python bench/_latency_publisher.py BASE_URL SPACE_ID < tokens.json

reads a JSON list of API tokens on stdin and publishes one aiortc speaker per token to
``POST /api/spaces/SPACE_ID/whip`` (sendrecv, like a browser: each also receives its
mix-minus, which is read and dropped). Each sends a quiet tone of its own pitch, paced in
real time: at first all of them at once; after SIGUSR1, a conversation: TALKING speakers at
a time, taking turns every TURN_S seconds by the wall clock, the others sending digital
silence; after SIGUSR2 the same conversation with DTX (silent speakers send a packet every
400 ms, as browsers do when the answer asks for ``usedtx=1``, which Tribune's does).
Each speaker's Opus is encoded by ``DtxTrack`` (mono 32 kbit/s, like a browser). Prints
``READY <n>`` once every peer is connected, then runs until SIGTERM or SIGINT and prints
``CPU <seconds>`` (its own user+system time) and packet counts on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time

import httpx

from _latency_rtc import DtxTrack, MarkerTrack, Peer

TALKING = 2
TURN_S = 3.0


async def main(base_url: str, space_id: str, tokens: list[str]) -> int:
    conversation = False
    dtx = False
    n = len(tokens)

    def speaking(i: int) -> bool:
        return not conversation or (int(time.time() // TURN_S) - i) % n < TALKING

    def start_conversation() -> None:
        nonlocal conversation
        conversation = True

    def start_dtx() -> None:
        nonlocal conversation, dtx
        conversation = dtx = True

    peers = [
        Peer(
            DtxTrack(
                MarkerTrack(
                    None,
                    tone_hz=200.0 + 37.0 * i,
                    tone_amplitude=0.05,
                    speaking=lambda i=i: speaking(i),  # type: ignore[misc]
                ),
                lambda: dtx,
            ),
            sendrecv=os.environ.get("BENCH_SENDONLY") != "1",
        )
        for i in range(n)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, start_conversation)
    loop.add_signal_handler(signal.SIGUSR2, start_dtx)
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
        sent = sum(p.track.sent for p in peers if isinstance(p.track, DtxTrack))
        held = sum(p.track.held for p in peers if isinstance(p.track, DtxTrack))
        print(f"PACKETS sent {sent} held-by-dtx {held}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], json.load(sys.stdin))))
