"""Latency benchmark helpers: simulated HLS players and their playout model.

Two players, both plain HTTP clients that record what they fetched and when it arrived:

* ``run_ll_player`` behaves like hls.js in low-latency mode: one playlist load, start
  ``PART-HOLD-BACK`` behind the live edge, then for each next part a blocking playlist
  reload (``_HLS_msn``/``_HLS_part``) issued together with a request for the
  preload-hinted part (which the server holds until the part exists).
* ``run_plain_player`` behaves like a player of plain live HLS: start ``HOLD-BACK`` (three
  target durations by default) behind the live edge, reload the playlist every target
  duration (half of it after a reload that brought nothing new), fetch new segments.

``analyse`` then decodes what was fetched (PyAV, one decoder for the stream), finds the
markers and plays the media out on a model clock (see its docstring).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from _latency_hls import (
    RATE,
    FragmentDecoder,
    MediaPlaylist,
    find_onsets,
    match,
    parse_playlist,
)

#: lateness an audio output buffer hides: a part up to this late is not a stall
STALL_TOLERANCE_S = 0.005


@dataclass
class Fetch:
    """One part or segment as the player got it."""

    uri: str
    pdt: float
    duration: float
    requested: float
    arrived: float
    data: bytes = field(repr=False)


@dataclass
class PlayerLog:
    kind: str
    began: float
    #: where playback starts, in program date-time (live edge less the hold-back)
    start_pdt: float
    hold_back: float
    init: bytes = field(repr=False)
    fetches: list[Fetch] = field(default_factory=list)
    playlist_loads: int = 0
    errors: list[str] = field(default_factory=list)


async def _get(
    client: httpx.AsyncClient, url: str, params: dict[str, Any] | None = None
) -> tuple[httpx.Response, float, float]:
    requested = time.time()
    resp = await client.get(url, params=params)
    return resp, requested, time.time()


def _folder(playlist_url: str) -> str:
    return playlist_url.rsplit("/", 1)[0]


async def _first_load(client: httpx.AsyncClient, playlist_url: str) -> tuple[MediaPlaylist, float]:
    resp, began, _ = await _get(client, playlist_url)
    resp.raise_for_status()
    return parse_playlist(resp.text), began


async def run_ll_player(client: httpx.AsyncClient, playlist_url: str, duration: float) -> PlayerLog:
    folder = _folder(playlist_url)
    playlist, began = await _first_load(client, playlist_url)
    hold = playlist.part_hold_back
    parts = playlist.parts()
    if hold is None or not parts:
        raise RuntimeError("the LL playlist has no PART-HOLD-BACK or no parts")
    edge = parts[-1].pdt + parts[-1].duration
    start = edge - hold
    first = next((i for i, p in enumerate(parts) if p.pdt + p.duration > start), len(parts) - 1)
    init, _, _ = await _get(client, f"{folder}/init.mp4")
    init.raise_for_status()
    log = PlayerLog("ll", began, start, hold, init.content, playlist_loads=1)

    async def fetch(uri: str, pdt: float, dur: float) -> None:
        resp, req, arr = await _get(client, f"{folder}/{uri}")
        if resp.status_code != 200:
            log.errors.append(f"GET {uri}: {resp.status_code}")
            return
        log.fetches.append(Fetch(uri, pdt, dur, req, arr, resp.content))

    for part in parts[first:]:
        await fetch(part.uri, part.pdt, part.duration)
    last = (parts[-1].msn, parts[-1].index)
    deadline = began + duration
    while time.time() < deadline and not playlist.ended:
        hint = playlist.hint()
        if hint is None:
            log.errors.append("no preload hint")
            break
        msn, index = hint
        hinted = asyncio.create_task(_get(client, f"{folder}/part{msn}.{index}.m4s"))
        resp, _, _ = await _get(client, playlist_url, params={"_HLS_msn": msn, "_HLS_part": index})
        log.playlist_loads += 1
        if resp.status_code != 200:
            log.errors.append(f"blocking reload {msn}.{index}: {resp.status_code}")
            hinted.cancel()
            await asyncio.gather(hinted, return_exceptions=True)
            await asyncio.sleep(0.1)
            resp, _, _ = await _get(client, playlist_url)
            log.playlist_loads += 1
        playlist = parse_playlist(resp.text)
        used_hint = False
        for part in playlist.parts():
            key = (part.msn, part.index)
            if key <= last:
                continue
            if key == hint:
                got, req, arr = await hinted
                used_hint = True
                if got.status_code == 200:
                    log.fetches.append(
                        Fetch(part.uri, part.pdt, part.duration, req, arr, got.content)
                    )
                else:  # the hold timed out: fetch it the ordinary way
                    await fetch(part.uri, part.pdt, part.duration)
            else:
                await fetch(part.uri, part.pdt, part.duration)
            last = key
        if not used_hint:
            hinted.cancel()
            await asyncio.gather(hinted, return_exceptions=True)
    return log


async def run_plain_player(
    client: httpx.AsyncClient, playlist_url: str, duration: float
) -> PlayerLog:
    folder = _folder(playlist_url)
    playlist, began = await _first_load(client, playlist_url)
    segments = playlist.segments
    if not segments:
        raise RuntimeError("the plain playlist has no segments yet")
    hold = playlist.hold_back
    edge = segments[-1].pdt + segments[-1].duration
    start = edge - hold
    first = next((i for i, s in enumerate(segments) if s.pdt + s.duration > start), 0)
    init, _, _ = await _get(client, f"{folder}/init.mp4")
    init.raise_for_status()
    log = PlayerLog("plain", began, start, hold, init.content, playlist_loads=1)

    async def fetch_new(segs: list[Any]) -> None:
        for seg in segs:
            resp, req, arr = await _get(client, f"{folder}/{seg.uri}")
            if resp.status_code != 200:
                log.errors.append(f"GET {seg.uri}: {resp.status_code}")
                continue
            log.fetches.append(Fetch(seg.uri, seg.pdt, seg.duration, req, arr, resp.content))

    await fetch_new(segments[first:])
    last = segments[-1].msn
    target = playlist.target_duration
    next_load = began + target
    deadline = began + duration
    while next_load < deadline and not playlist.ended:
        await asyncio.sleep(max(0.0, next_load - time.time()))
        resp, requested, _ = await _get(client, playlist_url)
        log.playlist_loads += 1
        if resp.status_code != 200:
            log.errors.append(f"reload: {resp.status_code}")
            next_load = requested + target / 2
            continue
        playlist = parse_playlist(resp.text)
        new = [s for s in playlist.segments if s.msn > last]
        await fetch_new(new)
        if new:
            last = new[-1].msn
        # hls.js: reload after a target duration, or half of one if nothing changed
        next_load = requested + (target if new else target / 2)
    return log


# --- playout ------------------------------------------------------------------------------


@dataclass
class Heard:
    sent: float
    #: the marker's program date-time: when the mixer made it (from EXT-X-PROGRAM-DATE-TIME)
    program: float
    #: when the modelled player plays its first sample
    played: float

    @property
    def latency(self) -> float:
        return self.played - self.sent


@dataclass
class Playout:
    kind: str
    heard: list[Heard]
    stalls: int
    stall_s: float
    #: first playlist request to first sample played
    startup_s: float
    gaps: int
    fetched: int
    playlist_loads: int
    errors: list[str]

    def latencies(self) -> list[float]:
        return [h.latency for h in self.heard]


def analyse(log: PlayerLog, sent: list[float]) -> Playout:
    """Decode the fetched media, model its playout, and time each marker.

    Playout model: playback starts at ``t0``, the arrival of the part (segment) holding
    the start position ``m0`` (the live edge less the hold-back at the first playlist
    load), and runs in real time: media time ``m`` plays at ``t0 + (m - m0) + S``, where
    ``S`` is the total stall so far. A part that has not arrived when its first sample is
    due (give or take ``STALL_TOLERANCE_S``, which an audio output buffer hides) is a
    stall: playback waits for it, and ``S`` grows by the wait. A marker's
    latency is when it plays less when its first sample was handed to aiortc; its program
    date-time (PDT of its part + its offset) says when the mixer made it.
    """
    if not log.fetches:
        return Playout(log.kind, [], 0, 0.0, 0.0, 0, 0, log.playlist_loads, log.errors)
    decoder = FragmentDecoder(log.init)
    chunks = [decoder.decode(f.data) for f in log.fetches]
    first, f0 = chunks[0], log.fetches[0]
    m0 = first.pts + round((log.start_pdt - f0.pdt) * RATE)
    m0 = min(max(m0, first.pts), first.pts + first.pcm.size - 1)
    t0 = f0.arrived
    stall_s, stalls, gaps = 0.0, 0, 0
    offsets: list[float] = []
    expected: int | None = None
    for fetch, chunk in zip(log.fetches, chunks, strict=True):
        if expected is not None and chunk.pts != expected:
            gaps += 1
        expected = chunk.pts + chunk.pcm.size
        due = t0 + (max(chunk.pts, m0) - m0) / RATE + stall_s
        if fetch.arrived > due + STALL_TOLERANCE_S:
            stalls += 1
            stall_s += fetch.arrived - due
        offsets.append(stall_s)
    starts = np.array([c.pts for c in chunks])
    x = np.concatenate([c.pcm for c in chunks])
    seen: dict[float, float] = {}
    for j in find_onsets(x):
        m = first.pts + j
        if m < m0 + RATE // 100:  # a marker cut by the start position
            continue
        k = int(np.searchsorted(starts, m, side="right") - 1)
        program = log.fetches[k].pdt + (m - chunks[k].pts) / RATE
        seen[program] = t0 + (m - m0) / RATE + offsets[k]
    heard = [Heard(s, p, seen[p]) for s, p in match(sent, list(seen), within=1.5)]
    return Playout(
        kind=log.kind,
        heard=heard,
        stalls=stalls,
        stall_s=stall_s,
        startup_s=t0 - log.began,
        gaps=gaps,
        fetched=len(log.fetches),
        playlist_loads=log.playlist_loads,
        errors=log.errors,
    )
