"""The cluster `tribune cluster up` runs, driven end to end through its edges: PostgreSQL,
Redis, a media node, two API workers and two nginx edges, each a real process."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio import listen_live, tone_share, whip_publish
from tests.e2e.test_live_audio import api_token
from tests.helpers import create_space, join, sign_up
from tribune.cluster import Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: it is private to root, and nginx's workers run as nobody.
    with tempfile.TemporaryDirectory(prefix="tribune-cluster-") as tmp:
        Path(tmp).chmod(0o755)
        with running_cluster(Path(tmp) / "cluster") as running:
            yield running


async def test_listeners_on_both_edges_hear_the_speaker_and_one_edge_can_go(
    cluster: Cluster,
) -> None:
    """A host and a speaker work through edge 1 (API workers behind it forward WHIP to the
    media node); listeners on edge 1 and edge 2 hear the same 440 Hz. Stopping edge 1
    leaves edge 2's listeners playing."""
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
        async with httpx.AsyncClient(base_url=two) as client:
            state = (await client.get(f"/api/spaces/{sid}/state")).json()
        assert state["listeners"]["concurrent"] >= 2  # counted across workers (Redis)

        cluster.stop("edge-1")
        after = time.time()
        heard = await listen_live(two, playlists[two], after, 2.0)
        assert tone_share(heard, 440) > 0.3
    finally:
        await pub.close()
    with httpx.Client(base_url=two, cookies=host.cookies) as client:
        ended = client.post(f"/api/spaces/{sid}/end", headers={"X-CSRF-Token": host.csrf})
    assert ended.status_code == 200, ended.text
