"""The newcomer's minute: `tribune serve --demo` plays synthetic speakers."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from tests.audio import listen_live
from tests.helpers import join


async def test_demo_space_is_live_and_audible(start_server):
    """A live demo Space with two synthetic speakers; ffmpeg hears sound; levels move."""
    live = start_server(demo=True)
    with live.client() as anon:
        spaces = anon.get("/api/spaces?state=live").json()["spaces"]
        demo = next(s for s in spaces if s["title"].startswith("Tribune demo"))
        assert [m["role"] for m in demo["stage"]] == ["host", "speaker", "speaker"]
        playlist = join(anon, demo["id"])["urls"]["playlist"]
        # The voices take turns every 4 s: 6 s always holds some speech.
        heard = await listen_live(live.url, playlist, since=0.0, seconds=6.0)
        assert np.sqrt(np.mean(heard**2)) > 0.02, "the demo should not be silent"
        deadline = time.monotonic() + 10
        talking: set[str] = set()
        while len(talking) < 2:
            assert time.monotonic() < deadline, talking
            for m in anon.get(f"/api/spaces/{demo['id']}/state").json()["stage"]:
                if m["level"] > 0.1:
                    talking.add(m["user_id"])
            await asyncio.sleep(0.3)
        host = next(m for m in demo["stage"] if m["role"] == "host")
        assert host["user_id"] not in talking
        anon.get("/")  # the home page lists it
    # Starting again finds the same Space instead of making another.
    again = start_server(demo=True, data_dir=live.settings.data_dir)
    with again.client() as anon:
        titles = [s["title"] for s in anon.get("/api/spaces?state=live").json()["spaces"]]
    assert titles.count(demo["title"]) == 1
