"""The waiting room shared by every worker through Redis (see ``admission.waiting``).

Per Space: a hash with the line (``issued``, ``cursor``, ``last``, ``rate``, ``started``,
``pre_seq``), a sorted set of the pre-start tickets scored by their random keys, and one
key per burned ticket id that expires when any copy of the ticket would have. One Lua
script reads and moves the line and decides, atomically across workers, on Redis's own
clock (``TIME``), so workers never disagree about how far the cursor has moved. Keys of
a Space share a hash tag, so the script also runs on a Redis Cluster.
"""

from __future__ import annotations

from redis.asyncio import Redis

from tribune.admission.tickets import QueueTicket
from tribune.admission.waiting import TAU_S, Limits, Verdict

_DECIDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'issued', 'cursor', 'last', 'rate', 'started', 'pre_seq')
local R = tonumber(ARGV[4])
local issued = tonumber(h[1]) or 0
local cursor = tonumber(h[2]) or 0
local last = tonumber(h[3]) or now
local rate = tonumber(h[4]) or R
local started = h[5] == '1'
local pre_seq = tonumber(h[6]) or 0
local mode, id = ARGV[1], ARGV[8]
local status, place, gap, pre = 'queued', 0, 0, 0
if ARGV[2] == '1' and not started then
  started = true
  issued = redis.call('ZCARD', KEYS[2])
  cursor = tonumber(ARGV[6])
  last = now
end
if not started then
  pre = 1
  if mode == 'arrive' then
    pre_seq = pre_seq + 1
    place = pre_seq
    redis.call('ZADD', KEYS[2], ARGV[11], id)
  end
  local rank = redis.call('ZRANK', KEYS[2], id)
  if rank == false then status = 'lost' else gap = rank + 1; rate = R end
else
  local M = tonumber(ARGV[5])
  local room = M <= 0 or tonumber(ARGV[3]) < M
  local cap = issued + tonumber(ARGV[6])
  local dt = math.max(0, now - last)
  local new = cursor
  if room then new = math.max(cursor, math.min(cursor + dt * R, cap)) end
  if dt > 0 and new < cap then
    rate = rate + (1 - math.exp(-dt / tonumber(ARGV[7]))) * ((new - cursor) / dt - rate)
  end
  cursor = new
  last = now
  if mode == 'arrive' then
    issued = issued + 1
    place = issued
  elseif ARGV[9] == '1' then
    local rank = redis.call('ZRANK', KEYS[2], id)
    if rank == false then status = 'lost' else place = rank + 1 end
  else
    place = tonumber(ARGV[10])
    if place > issued then status = 'lost' end
  end
  if status ~= 'lost' then
    if mode == 'check' and redis.call('EXISTS', KEYS[3]) == 1 then
      status = 'used'
    elseif place <= cursor and room then
      status = 'admitted'
      if mode == 'check' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[12]) end
    else
      gap = math.max(place - cursor, 0.000000001)
    end
  end
end
redis.call('HSET', KEYS[1], 'issued', issued, 'cursor', tostring(cursor), 'last', tostring(now),
  'rate', tostring(rate), 'started', started and '1' or '0', 'pre_seq', pre_seq)
redis.call('PEXPIRE', KEYS[1], ARGV[13])
redis.call('PEXPIRE', KEYS[2], ARGV[13])
return {status, place, tostring(gap), tostring(rate), pre}
"""


class RedisWaitingRoom:
    def __init__(
        self, redis: Redis, burn_ttl_s: float, prefix: str = "tribune:wait", tau_s: float = TAU_S
    ) -> None:
        self.redis = redis
        self.burn_ttl_s = burn_ttl_s
        self.prefix = prefix
        self.tau_s = tau_s
        self._decide = redis.register_script(_DECIDE)

    def _keys(self, space_id: str, ticket_id: str) -> list[str]:
        base = f"{self.prefix}:{{{space_id}}}"
        return [f"{base}:line", f"{base}:pre", f"{base}:used:{ticket_id}"]

    async def _run(
        self,
        mode: str,
        space_id: str,
        ticket_id: str,
        key: float,
        ticket: QueueTicket | None,
        live: bool,
        active: int,
        limits: Limits,
    ) -> Verdict:
        ttl_ms = int(self.burn_ttl_s * 1000)
        args: list[str | int] = [
            mode,
            int(live),
            active,
            repr(float(limits.admit_per_s)),
            limits.max_listeners,
            repr(float(limits.burst)),
            repr(self.tau_s),
            ticket_id,
            int(ticket.prestart) if ticket is not None else 0,
            ticket.place if ticket is not None else 0,
            repr(key),
            ttl_ms,
            ttl_ms + 3_600_000,  # the line outlives its tickets
        ]
        status, place, gap, rate, pre = await self._decide(
            keys=self._keys(space_id, ticket_id), args=args
        )
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text not in ("admitted", "queued", "used", "lost"):
            raise RuntimeError(f"waiting room: unexpected verdict {text!r}")
        return Verdict(
            text,  # type: ignore[arg-type]
            int(place),
            float(gap),
            float(rate),
            bool(pre),
        )

    async def arrive(
        self, space_id: str, ticket_id: str, key: float, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        return await self._run("arrive", space_id, ticket_id, key, None, live, active, limits)

    async def check(
        self, space_id: str, ticket: QueueTicket, *, live: bool, active: int, limits: Limits
    ) -> Verdict:
        return await self._run(
            "check", space_id, ticket.ticket_id, 0.0, ticket, live, active, limits
        )

    async def close_space(self, space_id: str) -> None:
        line, pre, _ = self._keys(space_id, "-")
        await self.redis.delete(line, pre)

    async def close(self) -> None:
        await self.redis.aclose()
