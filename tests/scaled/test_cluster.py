"""The cluster `tribune cluster up` runs, driven end to end through its edges: PostgreSQL,
Redis, a media node, two API workers, a control worker and two nginx edges, each a real
process."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.audio import decode, listen_live, tone_share, whip_publish
from tests.e2e.test_live_audio import api_token
from tests.e2e.test_stream import read_stream, whole
from tests.helpers import create_space, join, sign_up
from tribune.cluster import Cluster, running_cluster


def simulator() -> ModuleType:
    """bench/listeners.py, the simulated players (not a package: loaded from its file)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "listeners.py"
    spec = importlib.util.spec_from_file_location("tribune_bench_listeners", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: it is private to root, and nginx's workers run as nobody.
    with tempfile.TemporaryDirectory(prefix="tribune-cluster-") as tmp:
        Path(tmp).chmod(0o755)
        with running_cluster(Path(tmp) / "cluster") as running:
            yield running


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_writes_go_to_the_control_worker_and_the_crowds_workers_yield_the_cpu(
    cluster: Cluster,
) -> None:
    """The edges send people's writes (an account, a Space) to the control worker and reads
    to the API workers (the edge's access log says which answered); the API workers run at
    nice 10, the edges' workers at -5, everything else at 0."""
    edge = cluster.edges[0]
    host = sign_up(edge)
    create_space(host, title="Which worker")
    assert httpx.get(f"{edge}/api/spaces?state=live", timeout=10).status_code == 200
    control = {address(url) for url in cluster.control_workers}
    crowd = {address(url) for url in cluster.api_workers}
    log = (cluster.directory / "edge-1" / "access.log").read_text().splitlines()

    def upstream(method_path: str) -> tuple[str, int]:
        line = next(x for x in reversed(log) if f'"{method_path}' in x)
        host_port = line.split(" upstream=", 1)[1].split()[0]
        name, port = host_port.rsplit(":", 1)
        return name, int(port)

    assert upstream("POST /api/accounts") in control
    assert upstream("POST /api/spaces") in control
    assert upstream("GET /api/spaces") in crowd
    for name, proc in cluster.processes.items():
        want = 10 if name.startswith("api-") else 0
        if name.startswith(("api-", "control-", "media", "edge-")):
            assert _nice(proc.pid) == want, name
        if name.startswith("edge-"):  # nginx's workers: the audio first (we run as root)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            workers = [
                int(pid)
                for pid in children
                if b"worker process" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            assert workers
            assert {_nice(pid) for pid in workers} == {-5}, name


async def test_listeners_on_both_edges_hear_the_speaker_and_one_edge_can_go(
    cluster: Cluster,
) -> None:
    """A host and a speaker work through edge 1 (API workers behind it forward WHIP to the
    media node); listeners on edge 1 and edge 2 hear the same 440 Hz. Stopping edge 1
    leaves edge 2's listeners playing, and a simulated player that was on edge 1 carries on
    from edge 2 within 5 s."""
    one, two = cluster.edges
    host = sign_up(one)
    sid = create_space(host, title="Cluster")["id"]
    talker = sign_up(one)
    invited = host.post(f"/api/spaces/{sid}/invitations", json={"user_id": talker.user["id"]})
    assert invited.status_code == 201, invited.text
    assert talker.post(f"/api/spaces/{sid}/invitations/me/accept").status_code == 204
    pub = await whip_publish(one, sid, api_token(talker), 440)
    try:
        since = time.time()
        playlists = {}
        for edge in (one, two):
            with httpx.Client(base_url=edge) as guest:
                playlists[edge] = join(guest, sid)["urls"]["playlist"]
        for edge in (one, two):
            heard = await listen_live(edge, playlists[edge], since, 2.0)
            assert tone_share(heard, 440) > 0.3, edge
        # The stream: each edge serves it from what the media node pushed to it.
        for edge in (one, two):
            with httpx.Client(base_url=edge) as guest:
                urls = join(guest, sid)["urls"]
                init = guest.get(urls["init"]).content
            _, body, headers = await read_stream(edge, urls["stream"], 2.5)
            assert headers.get("x-cache-status") is None  # nchan, not the proxy
            with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
                f.write(init + whole(body))
                f.flush()
                streamed = await asyncio.to_thread(decode, f.name)
            assert len(streamed) >= 2 * 48_000, edge
            assert tone_share(streamed, 440) > 0.3, edge
        async with httpx.AsyncClient(base_url=two) as client:
            state = (await client.get(f"/api/spaces/{sid}/state")).json()
        assert state["listeners"]["concurrent"] >= 2  # counted across workers (Redis)

        sim: Any = simulator()
        player = sim.Listener([address(one), address(two)], sid, sim.Stats(), time.monotonic() + 60)
        playing = asyncio.create_task(player.run())
        try:
            deadline = time.monotonic() + 10
            while len(player.arrivals) < 3:  # playing through edge 1
                assert time.monotonic() < deadline, player.stats
                await asyncio.sleep(0.1)
            assert player.using == 0

            cluster.stop("edge-1")
            stopped = time.monotonic()
            after = time.time()
            heard = await listen_live(two, playlists[two], after, 2.0)
            assert tone_share(heard, 440) > 0.3  # edge 2's listeners play on

            while not any(t > stopped for t in player.arrivals):
                assert time.monotonic() - stopped < 5, "the player did not recover in 5 s"
                await asyncio.sleep(0.05)
            recovered = min(t for t in player.arrivals if t > stopped) - stopped
            print(f"\nthe simulated player got a part from edge 2 {recovered:.2f} s after")
            assert recovered < 5
            assert (player.using, player.failovers) == (1, 1)
            assert player.stats.errors == 0
        finally:
            player.until = 0
            await asyncio.wait_for(playing, 10)
    finally:
        await pub.close()
    with httpx.Client(base_url=two, cookies=host.cookies) as client:
        ended = client.post(f"/api/spaces/{sid}/end", headers={"X-CSRF-Token": host.csrf})
    assert ended.status_code == 200, ended.text
