"""Request collapsing for LL-HLS: many listeners ask for the next part at the same instant.

Every listener at the live edge asks, right after part N, for the playlist that will hold
part N+1 (``_HLS_msn``/``_HLS_part``) and for part N+1 itself (the preload hint), about a
third of a second before it exists. The origin must see one request per object per edge,
however many listeners ask; and the edge should add as little as possible to the moment
the part arrives. nginx's proxy_cache_lock alone collapses the requests but lets waiters
re-check only every 500 ms; the generated edge ("hold") makes them wait in njs instead.

Both are measured here against the same origin and printed; only request counts are
asserted. For the numbers in docs/edges.md, run with more listeners and rounds:

    TRIBUNE_EDGE_LISTENERS=300 TRIBUNE_EDGE_ROUNDS=30 \\
        .venv/bin/pytest -s tests/edge/test_collapse.py
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.broadcast.hls import parse_playlist
from tests.edge.conftest import UNLIMITED, Edge, Origin, Space
from tests.edge.rawhttp import RawPool, RawResponse

LISTENERS = int(os.environ.get("TRIBUNE_EDGE_LISTENERS", "100"))
ROUNDS = int(os.environ.get("TRIBUNE_EDGE_ROUNDS", "6"))

_LOG = re.compile(
    r't=([\d.]+) "GET (\S+)" (\d+) \d+ ([\d.]+) cache=(\S+) upstream=(\S+) '
    r"upstream_time=\S+ waited=(\S*)"
)


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def q(f: float) -> float:
        return ordered[min(len(ordered) - 1, int(f * len(ordered)))]

    return (
        f"p50 {q(0.5):6.1f}  p95 {q(0.95):6.1f}  max {ordered[-1]:6.1f}  "
        f"mean {statistics.fmean(ordered):6.1f}"
    )


@dataclass
class Report:
    mode: str
    #: log URI (token replaced by "-") -> requests the origin received for it
    origin_requests: dict[str, int] = field(default_factory=dict)
    #: ms from the object landing in the edge's cache to each waiter's answer (edge's log)
    added_ms: list[float] = field(default_factory=list)
    #: the same seen by the client: each answer after the first one
    client_added_ms: list[float] = field(default_factory=list)
    answers: int = 0
    #: CPU the edge's workers used for the whole run
    cpu_s: float = 0.0

    def summary(self) -> str:
        counts = list(self.origin_requests.values())
        return (
            f"{self.mode:>5}: {len(counts)} objects, {self.answers} answers, origin requests "
            f"per object max {max(counts)} mean {statistics.fmean(counts):.2f}; "
            f"edge CPU per answer {self.cpu_s / self.answers * 1e6:.0f} us\n"
            f"         {len(self.added_ms)} waiters, ms added (edge log) "
            f"{quantiles(self.added_ms)}\n"
            f"         ms after the first answer (client) {quantiles(self.client_added_ms)}"
        )


def _check(answers: list[RawResponse], msn: int, part: int) -> None:
    """Every answer is right: blocking playlists hold the part (or its whole segment, once
    that is old), and the part is one and the same for everyone."""
    bodies = set()
    for a in answers:
        assert a.status == 200, (a.status, a.body[:200])
        if a.headers["content-type"].startswith("application/vnd.apple.mpegurl"):
            text = a.body.decode()
            assert f'URI="part{msn}.{part}.m4s",INDEPENDENT' in text or f"\nseg{msn}.m4s" in text
        else:
            bodies.add(a.body)
    assert len(bodies) == 1


async def measure(edge: Edge, origin: Origin, space: Space, mode: str) -> Report:
    tokens = [edge.join(space.id)["listener_token"] for _ in range(10)]
    base = f"/hls/{space.id}"
    report = Report(mode)
    objects: list[tuple[int, int]] = []
    cpu = edge.cpu_seconds()
    async with (
        RawPool("127.0.0.1", edge.port, 2 * LISTENERS) as pool,
        httpx.AsyncClient(base_url=origin.url, timeout=20) as direct,
    ):
        deadline = time.monotonic() + ROUNDS * 2 + 10
        while len(objects) < ROUNDS:
            assert time.monotonic() < deadline, "the origin stopped making parts"
            # Where the live edge is now, asked of the origin (a plain playlist request):
            # everyone then asks for the part announced by its preload hint.
            text = (await direct.get(f"{base}/{tokens[0]}/live.m3u8")).text
            hint = parse_playlist(text).preload_hint
            assert hint is not None
            found = re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint["URI"])
            assert found
            msn, part = int(found[1]), int(found[2])
            if (msn, part) in objects:
                await asyncio.sleep(0.01)  # the origin is still making the last round's part
                continue
            playlists = [
                f"{base}/{tokens[i % len(tokens)]}/live.m3u8?_HLS_msn={msn}&_HLS_part={part}"
                for i in range(LISTENERS)
            ]
            parts = [
                f"{base}/{tokens[i % len(tokens)]}/part{msn}.{part}.m4s" for i in range(LISTENERS)
            ]
            answers = await pool.fire(playlists + parts)
            _check(answers, msn, part)
            report.answers += len(answers)
            for group in (answers[:LISTENERS], answers[LISTENERS:]):
                first = min(a.done for a in group)
                report.client_added_ms += sorted((a.done - first) * 1000 for a in group)[1:]
            objects.append((msn, part))
    report.cpu_s = edge.cpu_seconds() - cpu

    seen = origin.requests(f"{base}/")
    for m, p in objects:
        blocking = f"{base}/-/live.m3u8?_HLS_msn={m}&_HLS_part={p}"
        report.origin_requests[blocking] = sum(
            1
            for s in seen
            if s.path.endswith("/live.m3u8") and s.query == f"_HLS_msn={m}&_HLS_part={p}"
        )
        media = f"{base}/-/part{m}.{p}.m4s"
        report.origin_requests[media] = sum(1 for s in seen if s.path.endswith(f"/part{m}.{p}.m4s"))

    # From the edge's own log: when each object landed (its origin fetch completed), and
    # when each request that had arrived before that was answered.
    lines: dict[str, list[tuple[float, float, bool]]] = {}
    for line in edge.log():
        if (m := _LOG.search(line)) and m[2] in report.origin_requests:
            done, took = float(m[1]), float(m[4])
            lines.setdefault(m[2], []).append((done - took, done, m[6] != "-"))
    for requests in lines.values():
        if not any(upstream for _, _, upstream in requests):
            continue
        # Nobody can be answered before the object is in the edge's cache: the first
        # answer of any kind marks when it landed (the fetch's own log line may come later).
        landed = min(done for _, done, _ in requests)
        report.added_ms += [
            (done - landed) * 1000
            for arrived, done, upstream in requests
            if not upstream and arrived < landed
        ]
    return report


@pytest.fixture(scope="module")
def lock_edge(start_edge: Callable[..., Edge]) -> Edge:
    """nginx's proxy_cache_lock alone, for comparison."""
    return start_edge("--collapse", "lock", *UNLIMITED)


async def test_identical_blocking_requests_reach_the_origin_once_per_part(
    origin: Origin, edge: Edge, lock_edge: Edge, space: Space, capsys
):
    """LISTENERS listeners ask for the next part's blocking playlist and the part itself at
    once, ROUNDS parts in a row: the origin sees one request per object, with either edge.
    The edge-added latency is printed for both (docs/edges.md discusses the numbers)."""
    reports = [
        await measure(lock_edge, origin, space, "lock"),
        await measure(edge, origin, space, "hold"),
    ]
    with capsys.disabled():
        print(f"\n{LISTENERS} listeners x (blocking playlist + part), {ROUNDS} parts:")
        for report in reports:
            print("  " + report.summary())
    for report in reports:
        counts = report.origin_requests
        assert len(counts) == 2 * ROUNDS
        assert all(1 <= n <= 2 for n in counts.values()), counts
        assert sum(counts.values()) <= len(counts) + 1, counts
    hold = reports[1]
    assert hold.added_ms, "no request waited: the measurement did not measure"
    assert not [line for line in edge.errors().splitlines() if "[error]" in line]


async def test_an_abandoned_claim_is_taken_over(origin: Origin, edge: Edge, space: Space):
    """A claim whose fetch died (left behind by a crashed worker, say) does not wedge the
    object: once older than the hold time, the next request takes it over and fetches."""
    token = edge.join(space.id)["listener_token"]
    async with httpx.AsyncClient(base_url=edge.url, timeout=20) as client:
        text = (await client.get(f"{origin.url}/hls/{space.id}/{token}/live.m3u8")).text
        hint = parse_playlist(text).preload_hint
        assert hint is not None
        key = f"{space.id}/{hint['URI']}"
        claim = edge.directory / "cache" / "claims" / hashlib.md5(key.encode()).hexdigest()  # noqa: S324
        claim.write_bytes(b"")
        old = time.time() - 60
        os.utime(claim, (old, old))
        started = time.monotonic()
        r = await client.get(f"/hls/{space.id}/{token}/{hint['URI']}")
        took = time.monotonic() - started
    assert r.status_code == 200
    assert r.headers["x-cache-status"] == "MISS"  # this request fetched it
    assert took < 2, took
    assert (
        len([s for s in origin.requests(f"/hls/{space.id}/") if s.path.endswith(hint["URI"])]) == 1
    )
