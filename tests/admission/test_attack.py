"""Attack mode: the proof of work, who must solve it, the automatic switch, the operator's
switch and the limits per address and per listener token; in process and on Redis."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import LiveServer
from tests.helpers import bearer, create_space, problem, sign_up
from tests.redis_server import running_redis
from tribune.admission.attack import (
    AttackMode,
    MemoryAttackState,
    Operator,
    Policy,
    RedisAttackState,
)
from tribune.admission.pow import (
    WINDOW_S,
    MemoryPowBurns,
    Pow,
    RedisPowBurns,
    leading_zero_bits,
    pow_key,
    solve,
)
from tribune.exceptions import InvalidInput, ProofOfWorkRequired, RateLimited
from tribune.store.users import User

BITS = 8  # ~256 hashes: the tests solve many
OPERATOR_KEY = "operator-key-" + "x" * 16


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


def solved(challenge: dict, rand: str | None = None) -> str:
    """What an honest client sends back for ``challenge``."""
    rand = rand or secrets.token_urlsafe(12)
    return f"{challenge['window']}:{rand}:{solve(challenge['prefix'], challenge['bits'], rand)}"


# -- the proof of work itself ----------------------------------------------------------


def test_leading_zero_bits_counts_from_the_first_bytes_high_bit() -> None:
    assert leading_zero_bits(bytes([0x80]) + bytes(31)) == 0
    assert leading_zero_bits(bytes([0x01]) + bytes(31)) == 7
    assert leading_zero_bits(bytes([0, 0x20]) + bytes(30)) == 10
    assert leading_zero_bits(bytes(32)) == 256


def test_a_solution_is_checked_against_the_seed_the_window_and_the_bits() -> None:
    now = [1_000_000.0]
    pow = Pow(pow_key(b"s" * 32), clock=lambda: now[0])
    challenge = pow.challenge("space1", BITS)
    assert challenge["algorithm"] == "sha256-leading-zero-bits"
    assert challenge["prefix"].startswith(f"tribune-pow:v1:space1:{challenge['window']}:")
    assert challenge["expires_at"] == (challenge["window"] + 2) * WINDOW_S
    rand = "abcdefgh12345678"
    good = solved(challenge, rand)
    digest = hashlib.sha256(f"{challenge['prefix']}{rand}:{good.rsplit(':', 1)[1]}".encode())
    assert leading_zero_bits(digest.digest()) >= BITS
    assert pow.check("space1", good, BITS) == f"space1:{challenge['window']}:{rand}"

    def refused(solution: str, space: str = "space1", bits: int = BITS) -> str:
        with pytest.raises(ProofOfWorkRequired) as caught:
            pow.check(space, solution, bits)
        assert caught.value.challenge["window"] == pow.window()  # a fresh one to solve
        return caught.value.detail

    assert "malformed" in refused("not-a-solution")
    assert "malformed" in refused(f"{challenge['window']}:short:1")
    # Find a counter that does NOT meet the bits (most do not).
    window, _, n = good.split(":")
    weak = next(
        f"{window}:{rand}:{k}"
        for k in range(10_000)
        if leading_zero_bits(hashlib.sha256(f"{challenge['prefix']}{rand}:{k}".encode()).digest())
        < BITS
    )
    assert "fewer than" in refused(weak)
    # Another Space's seed: the same numbers hash to something else.
    assert "fewer than" in refused(solved(pow.challenge("space2", 16)), bits=16)
    # Another key (another deployment) cannot make seeds that pass here.
    forged = Pow(pow_key(b"t" * 32), clock=lambda: now[0]).challenge("space1", 16)
    assert "fewer than" in refused(solved(forged), bits=16)
    # Good for the window it was made in and the next; not after.
    now[0] += WINDOW_S
    assert pow.check("space1", good, BITS)
    now[0] += WINDOW_S
    assert "another minute" in refused(good)
    # ... nor for a window from the future (it cannot have been given out).
    future = pow.challenge("space1", BITS)
    assert "another minute" in refused(f"{future['window'] + 1}:{rand}:{n}")


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[tuple[object, object]]:
    if request.param == "memory":
        pair: tuple = (MemoryAttackState(), MemoryPowBurns())
    else:
        url = request.getfixturevalue("redis_url")
        pair = (RedisAttackState(Redis.from_url(url)), RedisPowBurns(Redis.from_url(url)))
    yield pair
    await pair[0].close()
    await pair[1].close()


async def test_a_solution_is_good_once(state: tuple) -> None:
    burns = state[1]
    key = f"space:{time.time()}:{secrets.token_hex(4)}"
    assert await burns.burn(key)
    assert not await burns.burn(key)
    assert await burns.burn(key + "x")


def attack_mode(state: tuple, **policy: object) -> AttackMode:
    return AttackMode(state[0], state[1], Pow(pow_key(b"k" * 32)), Policy(**policy))  # type: ignore[arg-type]


async def test_the_operator_setting_and_the_automatic_switch(state: tuple) -> None:
    attack = attack_mode(state, default_mode="auto", joins_per_s=50, hold_s=5)
    space = "s" + secrets.token_hex(4)
    await attack.set(None, None)
    assert not await attack.on_for(space)
    assert (await attack.document(space)) == {"attack_mode": False, "challenge": None}
    # 40 arrivals in a second: a crowd under the threshold.
    clock = [0.0]
    attack.clock = lambda: clock[0]
    for place in range(1, 41):
        clock[0] = place / 40
        await attack.arrived(space, place, False)
    attack._spaces.clear()
    assert not await attack.on_for(space)
    # Then 100 a second for two seconds: over it. The switch is the Space's only.
    for place in range(41, 242):
        clock[0] = 1 + (place - 41) / 100
        await attack.arrived(space, place, False)
    assert await attack.on_for(space)
    assert not await attack.on_for(space + "x")
    document = await attack.document(space)
    assert document["attack_mode"] is True
    assert document["challenge"]["bits"] == 18
    assert space in (await attack.status())["tripped"]
    # The operator's word wins, both ways, and changes the difficulty.
    await attack.set("off", None)
    assert not await attack.on_for(space)
    await attack.set("on", 12)
    assert await attack.on_for(space + "x")
    assert (await attack.document(space))["challenge"]["bits"] == 12
    status = await attack.status()
    assert (status["mode"], status["configured_mode"], status["pow_bits"]) == ("on", "auto", 12)
    with pytest.raises(InvalidInput):
        await attack.set("sometimes", None)  # type: ignore[arg-type]
    await attack.set(None, None)
    assert await state[0].operator() == Operator()


async def test_two_workers_share_the_switch_through_redis(redis_url: str) -> None:
    def worker() -> AttackMode:
        return attack_mode(
            (RedisAttackState(Redis.from_url(redis_url)), RedisPowBurns(Redis.from_url(redis_url))),
            joins_per_s=10,
        )

    one, two = worker(), worker()
    try:
        await share(one, two)
    finally:
        await one.set(None, None)
        await one.close()
        await two.close()


async def until(attack: AttackMode, space: str, *, on: bool) -> None:
    """Poll until ``attack`` sees the setting another worker made (within ~CACHE_S)."""
    deadline = time.monotonic() + 5
    while await attack.on_for(space) != on:
        assert time.monotonic() < deadline, f"attack mode never went {'on' if on else 'off'}"
        await asyncio.sleep(0.02)


async def share(one: AttackMode, two: AttackMode) -> None:
    space = "s" + secrets.token_hex(4)
    await one.set(None, None)
    clock = [0.0]
    one.clock = lambda: clock[0]
    await one.arrived(space, 1, False)
    clock[0] = 1.0
    await one.arrived(space, 100, False)  # 99 arrivals (all workers') in a second
    assert await two.on_for(space)
    await one.set("off", None)
    await until(two, space, on=False)  # the other worker's cache of the setting (CACHE_S)
    # One solution, two workers: the second use is refused wherever it lands.
    await one.set("on", BITS)
    await until(two, space, on=True)
    challenge = (await one.document(space))["challenge"]
    good = solved(challenge)
    await one.check_join(space, good, None, first=True, trusted=False)
    with pytest.raises(ProofOfWorkRequired, match="already used"):
        await two.check_join(space, good, None, first=True, trusted=False)


async def test_who_must_solve_and_the_limit_per_address() -> None:
    attack = attack_mode(
        (MemoryAttackState(), MemoryPowBurns()),
        default_mode="on",
        bits=BITS,
        per_address_rate=1.0,
        per_address_burst=3,
    )
    space = "space1"
    with pytest.raises(ProofOfWorkRequired) as caught:
        await attack.check_join(space, None, "10.0.0.1", first=True, trusted=False)
    challenge = caught.value.challenge
    assert challenge["bits"] == BITS
    await attack.check_join(space, solved(challenge), "10.0.0.1", first=True, trusted=False)
    # Back from the waiting room (it paid on arrival), or an account with history: no puzzle.
    await attack.check_join(space, None, "10.0.0.1", first=False, trusted=False)
    # ... but every join counts against its address.
    with pytest.raises(RateLimited) as limited:
        await attack.check_join(space, None, "10.0.0.1", first=True, trusted=True)
    assert limited.value.retry_after > 0
    await attack.check_join(space, None, "10.0.0.2", first=True, trusted=True)
    old = User("u1", "ada", "Ada", datetime.now(UTC) - timedelta(days=8))
    new = User("u2", "bob", "Bob", datetime.now(UTC) - timedelta(hours=1))
    assert attack.trusts(old, datetime.now(UTC))
    assert not attack.trusts(new, datetime.now(UTC))
    assert not attack.trusts(None, datetime.now(UTC))


# -- over HTTP -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "redis"])
def guarded(
    request: pytest.FixtureRequest, start_server: Callable[..., LiveServer]
) -> Iterator[LiveServer]:
    extra = {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    server = start_server(
        media=False,
        attack_mode="on",
        pow_bits=BITS,
        operator_key=OPERATOR_KEY,
        joins_per_address_per_s=1.0,
        joins_per_address_burst=6,
        **extra,
    )
    yield server
    server.stop()


def address() -> dict[str, str]:
    """A client address of its own (the test client is 127.0.0.1, a trusted proxy)."""
    return {"X-Forwarded-For": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7"}


def pow_problem(r: httpx.Response, contains: str = "") -> dict:
    body = problem(r, 403, contains=contains)
    assert body["type"] == "urn:tribune:problem:proof-of-work-required"
    assert r.headers["Cache-Control"] == "no-store"
    return body["challenge"]


def test_an_anonymous_join_solves_first_and_a_solution_works_once(guarded: LiveServer) -> None:
    host = sign_up(guarded.url)
    sid = create_space(host)["id"]
    with guarded.client(headers=address()) as guest:
        r = guest.get(f"/api/spaces/{sid}/admission")
        assert r.status_code == 200
        assert r.headers["Cache-Control"] == "public, max-age=1"
        assert r.json()["attack_mode"] is True
        challenge = pow_problem(guest.post(f"/api/spaces/{sid}/join"), "solve the challenge")
        assert challenge["bits"] == BITS
        good = solved(challenge)
        r = guest.post(f"/api/spaces/{sid}/join", json={"pow": good})
        assert r.status_code == 201, r.text
        assert r.json()["listener_token"].startswith("tbl_")
        pow_problem(guest.post(f"/api/spaces/{sid}/join", json={"pow": good}), "already used")
        pow_problem(guest.post(f"/api/spaces/{sid}/join", json={"pow": "1:abcdefgh:1"}))
        problem(guest.post(f"/api/spaces/{sid}/join", json={"pow": 12}), 422)
        problem(guest.post(f"/api/spaces/{sid}/join", json={"pow": "x" * 200}), 422)
        problem(guest.get("/api/spaces/nope/admission"), 404)


def test_an_account_with_history_skips_the_puzzle(
    guarded: LiveServer, start_server: Callable[..., LiveServer]
) -> None:
    host = sign_up(guarded.url)
    sid = create_space(host)["id"]
    fresh = sign_up(guarded.url)
    fresh.headers.update(address())
    pow_problem(fresh.post(f"/api/spaces/{sid}/join"))
    # The stage is never asked, however new the account: the host joins straight in.
    assert host.post(f"/api/spaces/{sid}/join").status_code == 201
    # Where every account counts as having history, a signed-in join goes straight in.
    lenient = start_server(media=False, attack_mode="on", trusted_account_age_h=0)
    try:
        host2 = sign_up(lenient.url)
        sid2 = create_space(host2)["id"]
        member = sign_up(lenient.url)
        assert member.post(f"/api/spaces/{sid2}/join").status_code == 201
        with lenient.client() as guest:
            pow_problem(guest.post(f"/api/spaces/{sid2}/join"))
    finally:
        lenient.stop()


def test_a_join_back_from_the_waiting_room_needs_no_new_puzzle(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(media=False, attack_mode="on", pow_bits=BITS, admit_per_s=1.0)
    try:
        host = sign_up(server.url)
        sid = create_space(host)["id"]
        with server.client() as guest:
            tickets = []
            for _ in range(3):
                challenge = pow_problem(guest.post(f"/api/spaces/{sid}/join"))
                r = guest.post(f"/api/spaces/{sid}/join", json={"pow": solved(challenge)})
                if r.status_code == 503:
                    tickets.append(r.json()["ticket"])
            assert tickets, "the burst of one should have been spent"
            deadline = time.monotonic() + 15
            ticket = tickets[0]
            while True:
                r = guest.post(f"/api/spaces/{sid}/join", json={"ticket": ticket})
                assert r.status_code in (201, 503), r.text
                if r.status_code == 201:
                    break
                ticket = r.json()["ticket"]
                assert time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        server.stop()


def test_joins_are_limited_per_address(guarded: LiveServer) -> None:
    host = sign_up(guarded.url)
    sid = create_space(host)["id"]
    flood = address()
    with guarded.client(headers=flood) as bot, guarded.client(headers=address()) as other:
        answers = [bot.post(f"/api/spaces/{sid}/join").status_code for _ in range(12)]
        assert answers[:6] == [403] * 6  # the burst: each told to solve
        assert 429 in answers[6:]
        r = bot.post(f"/api/spaces/{sid}/join")
        body = problem(r, 429, contains="your address")
        assert int(r.headers["Retry-After"]) >= 1
        assert body["retry_after"] > 0
        # Someone else is not affected.
        assert other.post(f"/api/spaces/{sid}/join").status_code == 403


def test_heartbeats_are_limited_per_listener_token(guarded: LiveServer) -> None:
    host = sign_up(guarded.url)
    sid = create_space(host)["id"]
    with guarded.client(headers=address()) as guest:
        challenge = pow_problem(guest.post(f"/api/spaces/{sid}/join"))
        token = guest.post(f"/api/spaces/{sid}/join", json={"pow": solved(challenge)}).json()[
            "listener_token"
        ]
        beats = [
            guest.post(f"/api/spaces/{sid}/heartbeat", headers=bearer(token)).status_code
            for _ in range(8)
        ]
        assert beats[:5] == [200] * 5
        assert 429 in beats[5:]


def test_the_operator_switch(guarded: LiveServer, start_server: Callable[..., LiveServer]) -> None:
    host = sign_up(guarded.url)
    sid = create_space(host)["id"]
    path = "/api/operator/attack-mode"
    with guarded.client(headers=address()) as client:
        problem(client.get(path), 401)
        problem(client.get(path, headers=bearer("x" * 32)), 403, contains="operator key")
        problem(host.put(path, json={"mode": "off"}), 401)  # a user is no operator
        op = bearer(OPERATOR_KEY)
        assert client.get(path, headers=op).json()["mode"] == "on"
        problem(client.put(path, json={"mode": "maybe"}, headers=op), 422)
        problem(client.put(path, json={"pow_bits": 99}, headers=op), 422)
        r = client.put(path, json={"mode": "off"}, headers=op)
        assert r.status_code == 200
        assert r.json()["mode"] == "off"
        deadline = time.monotonic() + 5
        while client.post(f"/api/spaces/{sid}/join").status_code != 201:
            assert time.monotonic() < deadline, "attack mode never went off"
            time.sleep(0.1)
        assert client.get(f"/api/spaces/{sid}/admission").json() == {
            "attack_mode": False,
            "challenge": None,
        }
        r = client.put(path, json={"mode": None, "pow_bits": None}, headers=op)
        assert r.json()["mode"] == "on"  # back to the configured default
    off = start_server(media=False)
    try:
        with off.client() as client:
            problem(client.get(path, headers=bearer(OPERATOR_KEY)), 403, contains="are off")
    finally:
        off.stop()
