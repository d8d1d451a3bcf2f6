"""The host's side of the flash crowd (bench/flashcrowd.py), and the platform probes.

* :func:`set_up`: accounts (the host, speakers who will ask to speak, listeners the
  host will remove, a second host with another live Space, accounts to sign in with),
  and the scheduled Space. Done on an API worker directly: setting up is not measured.
* :class:`Publisher`: the host's microphone, an aiortc track (bench/_latency_rtc.py's
  MarkerTrack, as bench/fanout.py publishes) over WHIP through an edge, on its own
  event loop; published right after the start.
* :func:`host_main` (a process of its own, so that the publisher's encoding does not
  delay its clock): from the start on, the host moderates: a speaker asks to speak, the
  host accepts, mutes, unmutes and demotes them; now and then the host removes a
  listener who asked to speak. Each of the host's requests is timed. Meanwhile probes
  time the rest of the platform: a guest joining another live Space (by the honest
  client's rules, proof of work included), the listing of live Spaces, and signing in.
  Everything waits while the join path is down (``api_up`` cleared): that outage is
  measured on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from _flashcrowd_client import (
    HOST_OCTET,
    PROBE_OCTET,
    BoundConnection,
    join,
    join_sender,
)
from _latency_rtc import MarkerTrack
from latency import publish

#: one moderation step every this many seconds
ACTION_EVERY_S = 0.5
PROBE_EVERY_S = 1.0
SPEAKERS = 6
REMOVABLE = 40
#: accounts the probe signs in with, in turn (log-ins are limited per username)
SIGNERS = 8


@dataclass(frozen=True)
class Person:
    user_id: str
    username: str
    password: str
    token: str


@dataclass(frozen=True)
class Setup:
    space_id: str
    other_space_id: str
    host: Person
    speakers: list[Person]
    removable: list[Person]
    signers: list[Person]
    #: time.time() of the scheduled start (a whole second)
    scheduled: float


async def _person(api: str, prefix: str) -> Person:
    name = f"{prefix}_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:  # its own cookies
        r = await client.post(
            "/api/accounts", json={"username": name, "password": password, "display_name": name}
        )
        r.raise_for_status()
        user = r.json()["user"]
        headers = {"X-CSRF-Token": r.json()["csrf_token"]}
        t = await client.post("/api/tokens", json={"name": "flashcrowd"}, headers=headers)
        t.raise_for_status()
    return Person(user["id"], name, password, t.json()["token"])


async def set_up(api: str, start_in: float) -> Setup:
    """Accounts and the two Spaces, on ``api`` (an API worker); the Space under test is
    scheduled for the whole second ``start_in`` seconds after the accounts exist."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        people = await asyncio.gather(
            _person(api, "host"),
            _person(api, "other_host"),
            *(_person(api, "speaker") for _ in range(SPEAKERS)),
            *(_person(api, "troll") for _ in range(REMOVABLE)),
            *(_person(api, "signer") for _ in range(SIGNERS)),
        )
        host, other_host = people[:2]
        speakers = list(people[2 : 2 + SPEAKERS])
        removable = list(people[2 + SPEAKERS : 2 + SPEAKERS + REMOVABLE])
        signers = list(people[2 + SPEAKERS + REMOVABLE :])
        scheduled = math.ceil(time.time() + start_in)
        start = datetime.fromtimestamp(scheduled, UTC).isoformat()
        r = await client.post(
            "/api/spaces",
            json={"title": "The 8 pm show", "allow_guests": True, "scheduled_start": start},
            headers=_bearer(host),
        )
        r.raise_for_status()
        space = r.json()
        if space["state"] != "scheduled":
            raise RuntimeError(f"the Space is not scheduled: {space}")
        r = await client.post(
            "/api/spaces",
            json={"title": "Another Space", "allow_guests": True},
            headers=_bearer(other_host),
        )
        r.raise_for_status()
        return Setup(space["id"], r.json()["id"], host, speakers, removable, signers, scheduled)


def _bearer(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


def _client(edge: str, octet: int, n: int, person: Person | None = None) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.{octet}.{n >> 8}.{n & 255}")
    return httpx.AsyncClient(
        base_url=edge,
        transport=transport,
        timeout=20,
        headers=_bearer(person) if person else {},
    )


# --- starting and publishing ------------------------------------------------------------


def _host_client(edge: str) -> httpx.Client:
    """The host's own client, from the host's address."""
    return httpx.Client(
        base_url=edge,
        transport=httpx.HTTPTransport(local_address=f"127.{HOST_OCTET}.0.1"),
        timeout=30,
    )


def start_on_time(edge: str, setup: Setup) -> dict[str, Any]:
    """Sleep until the scheduled second, then the host starts the Space: when the
    request left, when it was answered, and the status."""
    time.sleep(max(0.0, setup.scheduled - time.time()))
    with _host_client(edge) as client:
        sent = time.time()
        r = client.post(f"/api/spaces/{setup.space_id}/start", headers=_bearer(setup.host))
        return {"sent": sent, "answered": time.time(), "status": r.status_code,
                "state": r.json().get("state") if r.is_success else r.text[:300]}  # fmt: skip


class Publisher:
    """The host's microphone over WHIP, on an event loop of its own (a thread)."""

    def __init__(self, edge: str, setup: Setup) -> None:
        self.edge = edge
        self.setup = setup
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.peer: Any = None
        self.client: httpx.AsyncClient | None = None

    def start(self) -> float:
        """Publish; returns how long it took (s)."""
        self.thread.start()
        began = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return time.monotonic() - began

    async def _start(self) -> None:
        self.client = httpx.AsyncClient(timeout=30)
        track = MarkerTrack(2.5, first_after_s=0.5, noise_dbfs=-50.0)
        self.peer = await publish(
            self.client,
            f"{self.edge}/api/spaces/{self.setup.space_id}/whip",
            track,
            headers=_bearer(self.setup.host),
        )

    def stop(self) -> None:
        async def close() -> None:
            if self.peer is not None:
                await self.peer.close()
            if self.client is not None:
                await self.client.aclose()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(20)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


def end_space(edge: str, setup: Setup) -> dict[str, Any]:
    with _host_client(edge) as client:
        sent = time.time()
        r = client.post(f"/api/spaces/{setup.space_id}/end", headers=_bearer(setup.host))
        return {"sent": sent, "latency_s": time.time() - sent, "status": r.status_code}


# --- the host's process: moderation and probes ------------------------------------------


@dataclass(frozen=True)
class HostPlan:
    edges: list[str]
    setup: Setup
    #: moderation and probes from here (time.time()) ...
    begin: float
    #: ... to here
    until: float
    seed: int


class Host:
    def __init__(self, plan: HostPlan, api_up: Any) -> None:
        self.plan = plan
        self.api_up = api_up
        self.rng = random.Random(plan.seed)
        #: (what, sent time.time(), latency s, status)
        self.records: list[tuple[str, float, float, int]] = []
        #: (time.time(), attack_mode or None, bits or None, status)
        self.admission: list[tuple[float, bool | None, int | None, int]] = []

    async def _timed(
        self,
        what: str,
        client: httpx.AsyncClient,
        path: str,
        *,
        crowd_lane: bool = False,
        **kw: Any,
    ) -> int:
        """One request, timed. Writes go to the control worker and carry on through the
        outage of the join path; reads (``crowd_lane``) go to the API workers and wait
        until they are back."""
        if crowd_lane:
            await self._wait_for_api()
        sent = time.time()
        began = time.perf_counter()
        try:
            r = await client.request(kw.pop("method", "POST"), path, **kw)
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        self.records.append((what, sent, time.perf_counter() - began, status))
        return status

    async def _wait_for_api(self) -> None:
        # a multiprocessing.Event, set by the main process: polled, not awaited
        while not self.api_up.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def run(self) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, self.plan.begin - time.time()))
        await asyncio.gather(self._moderate(), self._probe(), self._admission())
        return {"records": self.records, "admission": self.admission}

    async def _moderate(self) -> None:
        plan, setup = self.plan, self.plan.setup
        sid = setup.space_id
        host = _client(plan.edges[0], HOST_OCTET, 1, setup.host)
        speakers = [
            _client(plan.edges[i % len(plan.edges)], HOST_OCTET, 10 + i, p)
            for i, p in enumerate(setup.speakers)
        ]
        trolls = list(setup.removable)
        step = 0
        try:
            while time.time() < plan.until:
                i = step % len(speakers)
                who = setup.speakers[i].user_id
                # one speaker's turn (ask, accept, mute, unmute, back to the audience),
                # then a removal, and again
                if step % 2 == 1 and trolls:
                    troll = trolls.pop()
                    async with _client(plan.edges[-1], HOST_OCTET, 100 + len(trolls), troll) as t:
                        await self._timed("ask to speak", t, f"/api/spaces/{sid}/requests")
                    await self._pace()
                    await self._timed(
                        "remove", host, f"/api/spaces/{sid}/members/{troll.user_id}/remove"
                    )
                else:
                    await self._timed("ask to speak", speakers[i], f"/api/spaces/{sid}/requests")
                    for what, path in (
                        ("accept request", f"requests/{who}/accept"),
                        ("mute", f"members/{who}/mute"),
                        ("unmute", f"members/{who}/unmute"),
                        ("demote", f"members/{who}/demote"),
                    ):
                        await self._pace()
                        if time.time() >= plan.until:
                            break
                        await self._timed(what, host, f"/api/spaces/{sid}/{path}")
                step += 1
                await self._pace()
        finally:
            await host.aclose()
            for c in speakers:
                await c.aclose()

    async def _pace(self) -> None:
        await asyncio.sleep(ACTION_EVERY_S * (0.8 + 0.4 * self.rng.random()))

    async def _probe(self) -> None:
        plan, setup = self.plan, self.plan.setup
        n = 0
        async with _client(plan.edges[-1], PROBE_OCTET, 1) as anyone:
            while time.time() < plan.until:
                await self._wait_for_api()
                n += 1
                await self._other_space(n)
                await self._timed(
                    "list live Spaces", anyone, "/api/spaces?state=live", method="GET",
                    crowd_lane=True,
                )  # fmt: skip
                who = setup.signers[n % len(setup.signers)]
                edge = plan.edges[n % len(plan.edges)]
                async with _client(edge, PROBE_OCTET, 51200 + n % len(setup.signers)) as signer:
                    await self._timed(
                        "sign in",
                        signer,
                        "/api/session",
                        json={"username": who.username, "password": who.password},
                    )
                await asyncio.sleep(PROBE_EVERY_S * (0.8 + 0.4 * self.rng.random()))

    async def _other_space(self, n: int) -> None:
        """A guest joins the other Space by the honest client's rules: the time to 201."""
        edge = self.plan.edges[n % len(self.plan.edges)]
        host, port = edge.rsplit("//", 1)[1].split(":")
        conn = BoundConnection(host, int(port), f"127.{PROBE_OCTET}.{1 + (n >> 8)}.{n & 255}")
        try:
            sent = time.time()
            began = time.perf_counter()
            result = await join(
                join_sender(conn, self.plan.setup.other_space_id, "flashcrowd-probe"),
                deadline=sent + 30,
                rng=self.rng,
            )
            status = (
                201 if result.joined else (result.attempts[-1].status if result.attempts else 0)
            )
            self.records.append(("join another Space", sent, time.perf_counter() - began, status))
        finally:
            conn.close()

    async def _admission(self) -> None:
        """Whether the Space is in attack mode, every second (the admission document)."""
        sid = self.plan.setup.space_id
        async with _client(self.plan.edges[0], PROBE_OCTET, 3) as client:
            while time.time() < self.plan.until:
                await self._wait_for_api()
                try:
                    r = await client.get(f"/api/spaces/{sid}/admission")
                except httpx.HTTPError:
                    self.admission.append((time.time(), None, None, 0))
                else:
                    doc = r.json() if r.status_code == 200 else {}
                    challenge = doc.get("challenge") or {}
                    self.admission.append(
                        (time.time(), doc.get("attack_mode"), challenge.get("bits"), r.status_code)
                    )
                await asyncio.sleep(1.0)


def host_main(inbox: Any, api_up: Any, out: Any) -> None:
    """The host's process (``multiprocessing`` spawn): ready, then the plan it is given."""
    out.put(("ready", "host", None))
    plan: HostPlan = inbox.get()
    try:
        result = asyncio.run(Host(plan, api_up).run())
    except BaseException as exc:
        out.put(("failed", "host", repr(exc)))
        raise
    out.put(("done", "host", result))
