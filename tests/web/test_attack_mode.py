"""The Space page in attack mode, for real: the join is refused with a proof-of-work
challenge, the page solves it in a Web Worker, joins with the answer and plays; refused
answers are solved anew a bounded number of times; the waiting room and failures after
it are waited out as the server asks, never in a retry storm.

A real server in attack mode at 12 bits (a browser solves that in milliseconds; the real
difficulty's solve time is bench/pow_browser.py's business), admitting 0.5 listeners a
second per Space so that a line can be made. Joins go through a Playwright route that
records them and, where a test says so, spoils an answer or answers itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Route, Worker, expect

from tests.audio import whip_publish
from tests.conftest import LiveServer
from tests.helpers import create_space, sign_up
from tests.web.conftest import LaunchBrowser, page_errors
from tests.web.space_helpers import open_space, playing, unexpected
from tribune.admission.pow import Pow, leading_zero_bits, pow_key, solve

BITS = 12
POW_PROBLEM = "urn:tribune:problem:proof-of-work-required"
WORKER_PATH = "/static/space/pow-worker.js"
SOLVING = "Checking your connection… (a few seconds)"
#: the browser's own console lines for the answers these tests cause on purpose
EXPECTED = ("status of 403", "status of 502", "status of 503", "net::ERR_FAILED")


@pytest.fixture(scope="module")
def attack_server(start_server: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    """Live audio, attack mode on at 12 bits, 0.5 admissions a second per Space."""
    server = start_server(attack_mode="on", pow_bits=BITS, admit_per_s=0.5)
    yield server
    server.stop()


@pytest.fixture
async def live_space(attack_server: LiveServer) -> AsyncIterator[str]:
    """A live Space whose host hums 440 Hz; ended after the test."""
    host = sign_up(attack_server.url)
    sid = create_space(host, title="Under attack")["id"]
    r = host.post("/api/tokens", json={"name": "speaker"})
    assert r.status_code == 201, r.text
    pub = await whip_publish(
        attack_server.url, sid, {"Authorization": f"Bearer {r.json()['token']}"}, 440
    )
    yield sid
    await pub.close()
    host.post(f"/api/spaces/{sid}/end")


@dataclass
class Join:
    """One join the page made, as the route saw it."""

    sent_at: float  # monotonic: when the page sent it
    body: dict[str, Any] | None  # what reached the server (after any change by the test)
    status: int = 0  # 0: no answer (the test cut it)
    answered_at: float = 0.0
    retry_after: float | None = None
    problem: dict[str, Any] | None = None


#: what a test does to the n-th join (1-based): None (pass it on as it is), a new body to
#: send instead, "abort" (a network error) or (status, headers, body) to answer itself
Meddle = Callable[[int, dict[str, Any] | None], Any]


async def record_joins(page: Page, meddle: Meddle | None = None) -> list[Join]:
    """Route every join of ``page`` through the test; the list fills as they happen."""
    joins: list[Join] = []

    async def handle(route: Route) -> None:
        raw = route.request.post_data
        body = json.loads(raw) if raw else None
        change = meddle(len(joins) + 1, body) if meddle else None
        join = Join(time.monotonic(), body)
        joins.append(join)
        if change == "abort":
            join.answered_at = time.monotonic()
            await route.abort()
            return
        if isinstance(change, tuple):
            status, headers, answer = change
            join.status, join.answered_at = status, time.monotonic()
            join.problem = answer if isinstance(answer, dict) else None
            text = answer if isinstance(answer, str) else json.dumps(answer)
            await route.fulfill(status=status, headers=headers, body=text)
            return
        if isinstance(change, dict):
            join.body = change
        response = await route.fetch(post_data=json.dumps(join.body) if join.body else None)
        join.status = response.status
        header = response.headers.get("retry-after")
        join.retry_after = float(header) if header else None
        if response.status != 201:
            join.problem = await response.json()
        join.answered_at = time.monotonic()
        await route.fulfill(response=response)

    await page.route("**/api/spaces/*/join", handle)
    return joins


class Workers:
    """The Web Workers a page starts, and which of them have ended."""

    def __init__(self, page: Page) -> None:
        self.started: list[Worker] = []
        self.ended: list[Worker] = []
        page.on("worker", self._on_worker)

    def _on_worker(self, worker: Worker) -> None:
        self.started.append(worker)
        worker.on("close", lambda w: self.ended.append(w))

    @property
    def solvers(self) -> list[Worker]:
        return [w for w in self.started if w.url.endswith(WORKER_PATH)]

    async def all_ended(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w in self.ended for w in self.solvers):
                return True
            await asyncio.sleep(0.05)
        return False


def pow_of(join: Join) -> str | None:
    return join.body.get("pow") if join.body else None


def weak(server: LiveServer, sid: str, answer: str) -> str:
    """``answer`` with another ``n`` that does not meet the bits: a forged proof."""
    window, rand, _ = answer.split(":")
    prefix = Pow(pow_key(server.secret)).prefix(sid, int(window))
    n = next(
        n
        for n in range(1_000_000, 2_000_000)
        if leading_zero_bits(hashlib.sha256(f"{prefix}{rand}:{n}".encode()).digest()) < BITS
    )
    return f"{window}:{rand}:{n}"


async def log_statuses(page: Page) -> list[str]:
    statuses: list[str] = await page.evaluate(
        "() => window.tribune.player.log.map((e) => e.status)"
    )
    return statuses


async def test_a_guest_solves_the_challenge_in_a_worker_joins_and_plays(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """Play in attack mode: the join is refused with a challenge, a Web Worker solves it,
    the page says it is checking the connection, joins with the answer, plays, and the
    worker is gone."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    workers = Workers(page)
    joins = await record_joins(page)
    await page.get_by_role("button", name="▶ Play").click()
    await playing(page, beyond=0.5, timeout_ms=15_000)
    await expect(page.locator("#status")).to_have_text("Live.")

    assert [j.status for j in joins] == [403, 201], joins
    first, second = joins
    assert first.body is None
    assert first.problem is not None
    assert first.problem["type"] == POW_PROBLEM
    assert first.problem["challenge"]["bits"] == BITS
    answer = pow_of(second)
    assert answer is not None
    assert answer.startswith(f"{first.problem['challenge']['window']}:")
    assert set(second.body or {}) == {"pow"}  # the answer alone
    assert len(workers.solvers) == 1, [w.url for w in workers.started]
    assert await workers.all_ended(), "the proof-of-work worker was not terminated"
    assert SOLVING in await log_statuses(page)
    await expect(page.locator("#alert")).to_be_empty()
    assert unexpected(page_errors(page), *EXPECTED) == []


async def test_a_refused_answer_is_solved_anew(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """The first answer arrives for a minute long gone (expired), the second is forged
    (too few zero bits): each time the server refuses with a new challenge and the page
    solves that one in a new worker; the third answer gets in."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    workers = Workers(page)
    spoiled: list[str] = []

    def meddle(_: int, body: dict[str, Any] | None) -> dict[str, Any] | None:
        if not body or "pow" not in body or len(spoiled) >= 2:
            return None
        window, rand, n = body["pow"].split(":")
        if not spoiled:
            bad = f"{int(window) - 5}:{rand}:{n}"
        else:
            bad = weak(attack_server, live_space, body["pow"])
        spoiled.append(bad)
        return {"pow": bad}

    joins = await record_joins(page, meddle)
    await page.get_by_role("button", name="▶ Play").click()
    await playing(page, beyond=0.5, timeout_ms=20_000)

    assert [j.status for j in joins] == [403, 403, 403, 201], joins
    details = [(j.problem or {}).get("detail", "") for j in joins[:3]]
    assert "another minute" in details[1], details
    assert f"fewer than {BITS} zero bits" in details[2], details
    challenges = [(j.problem or {})["challenge"] for j in joins[:3]]
    assert all(c["bits"] == BITS for c in challenges)
    answers = [pow_of(j) for j in joins[1:]]
    assert answers[:2] == spoiled
    assert len({a.split(":")[1] for a in answers if a}) == 3  # a new solve each time
    assert len(workers.solvers) == 3
    assert await workers.all_ended()
    assert unexpected(page_errors(page), *EXPECTED) == []


async def test_answers_refused_again_and_again_end_in_a_message_not_a_storm(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """A server that refuses every answer gets five of them, spaced by a growing backoff,
    then the page stops asking and says so (Play tries again)."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    workers = Workers(page)

    def meddle(_: int, body: dict[str, Any] | None) -> dict[str, Any] | None:
        if body and "pow" in body:
            window, rand, n = body["pow"].split(":")
            return {"pow": f"{int(window) - 5}:{rand}:{n}"}
        return None

    joins = await record_joins(page, meddle)
    await page.get_by_role("button", name="▶ Play").click()
    alert = page.locator("#alert")
    await expect(alert).to_contain_text("could not check this browser's connection", timeout=40_000)
    await expect(page.locator("#play")).to_have_text("▶ Play")
    settled = len(joins)
    await page.wait_for_timeout(2000)
    assert len(joins) == settled  # and then nothing more
    assert len(joins) == 6, joins  # the first join and five answers
    assert all(j.status == 403 for j in joins)
    assert all(pow_of(j) for j in joins[1:])
    assert len(workers.solvers) == 5
    assert await workers.all_ended()
    assert unexpected(page_errors(page), *EXPECTED) == []


async def test_after_the_proof_the_line_is_waited_with_the_ticket_as_retry_after_says(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """Someone else (an honest client with its own proof) takes the one free place; the page
    solves its challenge, joins, is put in line (503, ticket, Retry-After), shows its
    place, comes back with the ticket alone and never before Retry-After, and plays when
    let in."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    workers = Workers(page)
    joins = await record_joins(page)
    async with httpx.AsyncClient(base_url=attack_server.url, timeout=10) as other:
        refused = await other.post(f"/api/spaces/{live_space}/join")
        assert refused.status_code == 403, refused.text
        challenge = refused.json()["challenge"]
        rand = secrets.token_urlsafe(12)
        n = solve(challenge["prefix"], challenge["bits"], rand)
        first = await other.post(
            f"/api/spaces/{live_space}/join", json={"pow": f"{challenge['window']}:{rand}:{n}"}
        )
    assert first.status_code == 201, first.text
    await page.get_by_role("button", name="▶ Play").click()
    status = page.locator("#status")
    await expect(status).to_contain_text("You're in line: position 1")
    await playing(page, beyond=0.5, timeout_ms=20_000)
    await expect(status).to_have_text("Live.")

    codes = [j.status for j in joins]
    assert codes[0] == 403, joins
    assert codes[-1] == 201, joins
    assert set(codes[1:-1]) == {503}, codes  # at least one: the line
    assert pow_of(joins[1]) is not None
    for join in joins[2:]:  # back from the line: the ticket alone, no proof of work again
        assert join.body is not None
        assert set(join.body) == {"ticket"}, join.body
        assert join.body["ticket"].startswith("tbq_")
    for waited, retry in itertools.pairwise(joins[1:]):
        assert waited.retry_after is not None
        assert retry.sent_at - waited.answered_at >= waited.retry_after  # never sooner
    assert len(workers.solvers) == 1
    assert unexpected(page_errors(page), *EXPECTED) == []


async def test_a_join_that_fails_without_retry_after_backs_off_and_gets_in(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """A network error, then a 502 without Retry-After: the page says it is trying again,
    backs off (it does not give up, nor hammer), then solves the challenge and plays."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    gateway = (502, {"Content-Type": "text/plain"}, "bad gateway")

    def meddle(index: int, _: dict[str, Any] | None) -> Any:
        return {1: "abort", 2: gateway}.get(index)

    joins = await record_joins(page, meddle)
    await page.get_by_role("button", name="▶ Play").click()
    await playing(page, beyond=0.5, timeout_ms=20_000)
    assert [j.status for j in joins] == [0, 502, 403, 201], joins
    statuses = await log_statuses(page)
    assert any(s.startswith("Tribune cannot be reached. Trying again in") for s in statuses)
    assert any(s.startswith("Tribune is having trouble. Trying again in") for s in statuses)
    assert unexpected(page_errors(page), *EXPECTED) == []


async def test_a_guests_reaction_before_play_solves_then_leaves_the_player_ready(
    attack_server: LiveServer, live_space: str, launch_browser: LaunchBrowser
) -> None:
    """A guest who reacts before pressing Play joins for it (solving the challenge first);
    the reaction goes out and the page goes back to offering Play, not still checking."""
    browser = await launch_browser()
    page = await open_space(browser, attack_server, live_space)
    workers = Workers(page)
    joins = await record_joins(page)
    async with page.expect_response(lambda r: r.url.endswith("/reactions")) as reacted:
        await page.locator('#reactions [data-reaction="clap"]').click()
    assert (await reacted.value).ok
    assert [j.status for j in joins] == [403, 201], joins
    assert len(workers.solvers) == 1
    await expect(page.locator("#play")).to_have_text("▶ Play")
    await expect(page.locator("#status")).to_have_text("Live now. Press Play to listen.")
    await expect(page.locator("#alert")).to_be_empty()
    assert unexpected(page_errors(page), *EXPECTED) == []
