"""What bench/flashcrowd.py measured: the figures, the targets, the table and the plot.

Everything is computed from what the clients recorded (each join request and its
answer, each stream) and from the edges' access logs (which attack requests an edge
passed to an origin: ``upstream=`` set). Times are ``time.time()``; the report shows them
relative to the scheduled start.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _flashcrowd_attack import KINDS
from _flashcrowd_client import who
from _flashcrowd_cluster import LogLine

TARGET_ATTEMPTS = 50_000
TARGET_CONTROL_P99_S = 0.5
TARGET_OUTAGE_RATIO = 1.1
TARGET_START_DELAY_S = 1.0
#: issue 6, item 2: "the estimate of wait is within 25 % of what actually happens", for
#: this share of the waits no error interrupted
TARGET_ESTIMATE_SHARE = 0.9
#: the host's moderation (targets) and the rest of the platform (reported)
HOST_ACTIONS = ("accept request", "mute", "unmute", "demote", "remove")
PROBES = ("join another Space", "list live Spaces", "sign in")
#: answers an honest listener may get: admitted, a place in line, a puzzle to solve, or
#: "come back in 2 s" from an edge that has enough of the Space's joins at the origins
EXPECTED = {
    (201, ""),
    (503, "waiting-room"),
    (403, "proof-of-work-required"),
    (503, "join-busy"),
}
#: the players' event loop running this late can make a stall of its own
LAG_S = 0.1
#: after the join path is back, the edges may still hold a worker as failed this long
#: (max_fails=3 fail_timeout=5s)
RECOVERY_S = 6.0


@dataclass
class RunData:
    """Everything one run produced (what the test inspects, and what the report reads)."""

    options: dict[str, Any]
    t0: float
    scheduled: float
    arrivals_end: float
    until: float
    listeners: list[dict[str, Any]]
    attack: list[tuple[int, float, float, int, str]]
    host: list[tuple[str, float, float, int]]
    admission: list[tuple[float, bool | None, int | None, int]]
    start: dict[str, Any]
    end: dict[str, Any]
    outage: tuple[float, float] | None
    log: list[LogLine]
    publish_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: per crowd process (the last: the listeners playing throughout): (second, worst
    #: event-loop lag in it)
    lag: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    #: CPU seconds by process over the run (``cpu_wall_s`` of wall-clock time)
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_wall_s: float = 0.0
    #: per second: (time.time(), cores busy by process name, the whole machine's)
    cpu_series: list[tuple[float, dict[str, float], float]] = field(default_factory=list)

    def in_outage(self, t: float, margin: float = RECOVERY_S) -> bool:
        return self.outage is not None and self.outage[0] <= t <= self.outage[1] + margin


def pct(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values, np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"n": int(a.size), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "max": float(a.max())}  # fmt: skip


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Rank correlation (ties broken by order: the times here are distinct)."""
    if len(x) < 3:
        return None
    rx = np.argsort(np.argsort(np.asarray(x)))
    ry = np.argsort(np.argsort(np.asarray(y)))
    return float(np.corrcoef(rx, ry)[0, 1])


def _attempts(listener: dict[str, Any]) -> Iterable[tuple[Any, ...]]:
    # (kind, sent, answered, status, problem, position, estimate, retry_after, prestart, waited)
    attempts: list[tuple[Any, ...]] = listener["attempts"]
    return attempts


def answer_kind(status: int, problem: str) -> str:
    return f"{status} {problem}".strip() if status else "network error"


def legit_answers(run: RunData) -> dict[str, Any]:
    """Every answer a legitimate listener got: expected ones, and the others (outside the
    outage, and during it)."""
    expected: collections.Counter[str] = collections.Counter()
    unexpected: collections.Counter[str] = collections.Counter()
    in_outage: collections.Counter[str] = collections.Counter()
    queued_without = 0
    for listener in run.listeners:
        for _kind, _sent, answered, status, problem, position, estimate, *_ in _attempts(listener):
            key = (status, problem if status != 201 else "")
            label = answer_kind(status, problem)
            if key in EXPECTED:
                expected[label] += 1
                if problem == "waiting-room" and (position is None or estimate is None):
                    queued_without += 1
            elif run.in_outage(answered):
                in_outage[label] += 1
            else:
                unexpected[label] += 1
    return {
        "expected": dict(expected),
        "unexpected": dict(unexpected),
        "during_outage": dict(in_outage),
        "queued_without_position_or_estimate": queued_without,
    }


def _listeners(run: RunData) -> dict[str, Any]:
    ls = run.listeners
    admitted = [x for x in ls if x["admitted"] is not None]
    audio = [x for x in admitted if x["first_audio"] is not None]
    queued = [x for x in ls if any(a[4] == "waiting-room" for a in _attempts(x))]
    prestart = [x for x in ls if any(a[8] for a in _attempts(x))]
    challenged = [x for x in ls if any(a[4] == "proof-of-work-required" for a in _attempts(x))]
    failed = collections.Counter(str(x["error"]).split(":")[0] for x in ls if x["admitted"] is None)
    no_audio = collections.Counter(str(x["play_error"]) for x in admitted if not x["first_audio"])
    from_arrival = [x["first_audio"] - x["arrival"] for x in audio]
    from_open = [x["first_audio"] - max(x["arrival"], run.scheduled) for x in audio]
    requests = collections.Counter(a[0] for x in ls for a in _attempts(x))
    latency = [a[2] - a[1] for x in ls for a in _attempts(x) if a[3]]
    return {
        "planned": run.options.get("listeners"),
        "arrived": len(ls),
        "arrived_before_start": sum(x["arrival"] < run.scheduled for x in ls),
        "admitted": len(admitted),
        "first_audio": len(audio),
        "queued": len(queued),
        "queued_before_start": len(prestart),
        "solved_pow": len(challenged),
        "rejected": len(ls) - len(admitted),
        "rejected_by": dict(failed),
        "admitted_without_audio": dict(no_audio),
        "join_requests": sum(requests.values()),
        "join_requests_by_kind": dict(requests),
        "join_latency_s": pct(latency),
        "first_audio_s": pct(from_arrival),
        "first_audio_from_start_s": pct(from_open),
        "pow_solving_s": pct([x["solving_s"] for x in challenged]),
    }


def _estimates(run: RunData) -> dict[str, Any]:
    """How the waiting room's estimates compared with the waits that followed (live line
    only: before the start the estimate is the time to the start), to when the listener
    sent the join that got it in (how long the server then took to answer is the join
    latency, reported apart). ``undisturbed``: only waits in which every later answer was
    a place in line or the admission (no error made the listener back off, which the
    estimate cannot foresee)."""
    ratios, calm = [], []
    for x in run.listeners:
        if x["admitted"] is None:
            continue
        attempts = list(_attempts(x))
        let_in = attempts[-1][1]
        for i, (_k, _s, answered, _st, problem, _p, estimate, _ra, prestart, _w) in enumerate(
            attempts
        ):
            if problem == "waiting-room" and not prestart and estimate:
                actual = let_in - answered
                if actual >= 2.0:  # shorter waits are dominated by the retry granularity
                    ratios.append(estimate / actual)
                    if all(a[3] in (201, 503) and a[4] in ("", "waiting-room")
                           for a in attempts[i + 1 :]):  # fmt: skip
                        calm.append(estimate / actual)

    def share(values: list[float]) -> float | None:
        return sum(0.75 <= r <= 1.25 for r in values) / len(values) if values else None

    return {
        "n": len(ratios),
        "estimate_over_actual": pct(ratios),
        "within_25_percent": share(ratios),
        "undisturbed_n": len(calm),
        "undisturbed_estimate_over_actual": pct(calm),
        "undisturbed_within_25_percent": share(calm),
    }


def _fairness(run: RunData) -> dict[str, Any]:
    """Arrival order against admission order: in the pre-queue (should not correlate) and
    in the live line (first in, first out).

    The pre-queue's listeners come back when their place's turn should come (their last
    Retry-After before the start says so, from the key their place is drawn by), so the
    order of return follows the places, not the arrivals."""
    pre, live = [], []
    for x in run.listeners:
        if x["admitted"] is None:
            continue
        attempts = list(_attempts(x))
        if any(a[8] for a in attempts):
            pre.append((x["arrival"], x["admitted"]))
        elif any(a[4] == "waiting-room" for a in attempts):
            live.append((x["arrival"], x["admitted"]))
    return {
        "prequeue_n": len(pre),
        "prequeue_rank_correlation": spearman([a for a, _ in pre], [b for _, b in pre]),
        "live_line_n": len(live),
        "live_line_rank_correlation": spearman([a for a, _ in live], [b for _, b in live]),
    }


def _start(run: RunData) -> dict[str, Any]:
    admitted = [x["admitted"] for x in run.listeners if x["admitted"] is not None]
    first = min(admitted) if admitted else None
    answered = run.start.get("answered")
    late_prestart = [
        a[2] - run.scheduled
        for x in run.listeners
        for a in _attempts(x)
        if a[8] and answered is not None and a[2] > answered
    ]
    ok = run.start.get("status") == 200
    delay = None
    if ok and first is not None:
        delay = max(0.0, max(answered or 0.0, first) - run.scheduled)
    return {
        "scheduled": run.scheduled,
        "start_request": {
            k: (v - run.scheduled if k in ("sent", "answered") else v) for k, v in run.start.items()
        },
        "first_admission_s": None if first is None else first - run.scheduled,
        "delay_s": delay,
        "prestart_answers_after_start": len(late_prestart),
        "last_prestart_answer_s": max(late_prestart) if late_prestart else None,
        "publish_s": run.publish_s,
    }


def _attack(run: RunData) -> dict[str, Any]:
    by_kind: dict[str, dict[str, Any]] = {
        k: {"sent": 0, "answered": 0, "client_status": collections.Counter(),
            "variants": collections.Counter(),
            "logged": 0, "at_edge": 0, "reached_origin": 0, "edge_status": collections.Counter(),
            "origin_status": collections.Counter(), "origin_paths": collections.Counter()}
        for k in KINDS
    }  # fmt: skip
    for k, _sent, _answered, status, variant in run.attack:
        row = by_kind[KINDS[k]]
        row["sent"] += 1
        row["answered"] += status != 0
        row["client_status"][status] += 1
        row["variants"][variant] += 1
    legit_up = legit_lines = 0
    for line in run.log:
        role, k = who(line.addr)
        if role == "legit":
            legit_lines += 1
            legit_up += line.upstream
        if role != "attack" or not 0 <= k < len(KINDS):
            continue
        row = by_kind[KINDS[k]]
        row["logged"] += 1
        if reached(run, line):
            row["reached_origin"] += 1
            row["origin_status"][line.status] += 1
            row["origin_paths"][_path_shape(line.uri)] += 1
        else:
            row["at_edge"] += 1
            row["edge_status"][line.status] += 1
    for row in by_kind.values():
        for key in ("client_status", "variants", "edge_status", "origin_status", "origin_paths"):
            row[key] = {str(a): b for a, b in row[key].most_common(8)}
    sent = sum(r["sent"] for r in by_kind.values())
    return {
        "sent": sent,
        "logged": sum(r["logged"] for r in by_kind.values()),
        "reached_origin": sum(r["reached_origin"] for r in by_kind.values()),
        "by_kind": by_kind,
        "legit_lines": legit_lines,
        "legit_reached_origin": legit_up,
    }


def reached(run: RunData, line: LogLine) -> bool:
    """The edge passed the request to a Tribune process that answered it: an upstream
    address is logged (not just the group's name, logged when none was up) and an origin's
    answer with it; nginx logs 502/504 as the upstream status when it could not reach or
    hear from any (Tribune itself never answers those)."""
    if not line.upstream:
        return False
    if line.upstream_status:
        answers = [a.strip() for a in line.upstream_status.split(",")]
        return any(a not in ("502", "504", "-") for a in answers)
    return not (line.status in (502, 504) and run.in_outage(line.t))


def _path_shape(uri: str) -> str:
    parts = uri.split("?", 1)[0].split("/")
    return "/".join(p if len(p) < 20 else "*" for p in parts)[:60]


def _cohort(run: RunData) -> dict[str, Any]:
    cohort = [x for x in run.listeners if x["cohort"]]
    started = [x for x in cohort if x["first_audio"] is not None]
    errors = collections.Counter(str(x["play_error"]) for x in started if x["play_error"])
    beats = [b for x in cohort for b in x["heartbeats"]]
    ok = sum(1 for _, s in beats if s == 200)
    outage_fail = sum(1 for t, s in beats if s != 200 and run.in_outage(t))
    lags = run.lag.get(max(run.lag), []) if run.lag else []
    crowd_lags = [lag for w, rows in run.lag.items() if w != max(run.lag) for _, lag in rows]
    # a stall in a second in which the players' own event loop ran late by more than the
    # players' headroom may be the simulator's, not the servers'
    late = {second for second, lag in lags if lag > LAG_S}
    stall_times = [t for x in started for t in x["stall_times"]]
    own = sum(1 for t in stall_times if int(t) in late or int(t) - 1 in late)
    return {
        "stalls_while_own_loop_lagged": own,
        "loop_lag_s": pct([lag for _, lag in lags]),
        "crowd_loop_lag_s": pct(crowd_lags),
        "listeners": len(cohort),
        "playing": len(started),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "stalls": sum(x["stalls"] for x in started),
        "stall_s": sum(x["stall_s"] for x in started),
        "max_gap_s": max((x["max_gap_s"] for x in started), default=0.0),
        "parts": sum(x["parts"] for x in started),
        "heartbeats": len(beats),
        "heartbeats_ok": ok,
        "heartbeats_failed_in_outage": outage_fail,
        "heartbeats_failed_otherwise": len(beats) - ok - outage_fail,
    }


def _host(run: RunData) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for what in (*HOST_ACTIONS, "ask to speak", *PROBES):
        rs = [r for r in run.host if r[0] == what]
        ok = [r for r in rs if 200 <= r[3] < 300]
        rows[what] = {
            "latency_s": pct([r[2] for r in ok]),
            "failed": len(rs) - len(ok),
            "failed_status": dict(collections.Counter(r[3] for r in rs if r not in ok)),
        }
    actions = [r for r in run.host if r[0] in HOST_ACTIONS]
    good = [r[2] for r in actions if 200 <= r[3] < 300]
    rows["all host actions"] = {
        "latency_s": pct(good),
        "failed": len(actions) - len(good),
        "failed_status": dict(collections.Counter(r[3] for r in actions if not 200 <= r[3] < 300)),
    }
    rows["end the Space"] = {
        "latency_s": pct([run.end["latency_s"]] if run.end.get("status") == 200 else []),
        "failed": int(run.end.get("status") != 200),
        "failed_status": {} if run.end.get("status") == 200 else {str(run.end.get("status")): 1},
    }
    return rows


def _outage(run: RunData) -> dict[str, Any] | None:
    if run.outage is None:
        return None
    began, ended = run.outage

    def rates(a: float, b: float) -> dict[str, Any]:
        span = max(1e-6, b - a)
        arrivals = sum(a <= x["arrival"] < b for x in run.listeners)
        kinds = collections.Counter(
            t[0] for x in run.listeners for t in _attempts(x) if a <= t[1] < b
        )
        sent = sum(kinds.values())
        # a join answered with a challenge and the join with its solution are one attempt
        attempts = sent - kinds["pow"]
        return {
            "seconds": span,
            "arrivals_per_s": arrivals / span,
            "join_requests_per_s": sent / span,
            "join_attempts_per_s": attempts / span,
            "ratio": (attempts / arrivals) if arrivals else None,
            "by_kind": dict(kinds),
        }

    return {
        "began_s": began - run.scheduled,
        "ended_s": ended - run.scheduled,
        "during": rates(began, ended),
        "before": rates(max(run.t0, began - (ended - began)), began),
        "after": rates(ended, min(run.until, ended + (ended - began))),
    }


def timeline(run: RunData) -> dict[str, list[float]]:
    """Per second from the first arrival to the end, relative to the scheduled start."""
    lo = math.floor(run.t0 - run.scheduled)
    hi = math.ceil(run.until - run.scheduled) + 1
    n = hi - lo
    series = {name: np.zeros(n) for name in (
        "arrivals", "admitted", "first_audio", "in_line", "first", "pow", "ticket", "retry",
        "attack_edge", "attack_origin", "attack_sent", "cohort_playing", "cohort_trouble",
    )}  # fmt: skip

    def bin_of(t: float) -> int:
        return min(n - 1, max(0, math.floor(t - run.scheduled) - lo))

    for x in run.listeners:
        series["arrivals"][bin_of(x["arrival"])] += 1
        attempts = list(_attempts(x))
        for a in attempts:
            series[a[0]][bin_of(a[1])] += 1
        if x["admitted"] is not None:
            series["admitted"][bin_of(x["admitted"])] += 1
        if x["first_audio"] is not None:
            series["first_audio"][bin_of(x["first_audio"])] += 1
        waiting = [a[2] for a in attempts if a[4] == "waiting-room"]
        if waiting:
            end = x["admitted"] if x["admitted"] is not None else attempts[-1][2]
            series["in_line"][bin_of(waiting[0]) : bin_of(end) + 1] += 1
        if x["cohort"] and x["first_audio"] is not None:
            stop = x["play_error_at"] or run.until
            series["cohort_playing"][bin_of(x["first_audio"]) : bin_of(stop)] += 1
            for t in x["stall_times"]:
                series["cohort_trouble"][bin_of(t)] += 1
            if x["play_error_at"]:
                series["cohort_trouble"][bin_of(x["play_error_at"])] += 1
    for _k, sent, *_ in run.attack:
        series["attack_sent"][bin_of(sent)] += 1
    for line in run.log:
        role, _ = who(line.addr)
        if role != "attack":
            continue
        series["attack_origin" if reached(run, line) else "attack_edge"][bin_of(line.t)] += 1
    cpu = {group: np.zeros(n) for group in (*CPU_GROUPS, "other", "machine")}
    for t, used, machine in run.cpu_series:
        i = bin_of(t - 0.5)
        ours = 0.0
        for name, cores in used.items():
            cpu[cpu_group(name)][i] = cpu[cpu_group(name)][i] + cores
            ours += cores
        cpu["machine"][i] = machine
        cpu["other"][i] = max(0.0, machine - ours)
    out = {k: v.tolist() for k, v in series.items()}
    out |= {f"cpu_{k}": v.tolist() for k, v in cpu.items()}
    out["t"] = list(range(lo, hi))
    return out


#: what the CPU went to, by the processes' names
CPU_GROUPS = ("API workers", "edges", "media", "PostgreSQL + Redis", "simulator")


def cpu_group(name: str) -> str:
    if name.startswith("api-"):
        return "API workers"
    if name.startswith("edge-"):
        return "edges"
    if name == "media":
        return "media"
    if name.startswith(("postgres", "redis")):
        return "PostgreSQL + Redis"
    return "simulator"  # the crowd, the players, the host and probes, this process


def analyse(run: RunData) -> dict[str, Any]:
    listeners = _listeners(run)
    attack = _attack(run)
    cohort = _cohort(run)
    host = _host(run)
    outage = _outage(run)
    start = _start(run)
    attempts = listeners["join_requests"] + attack["sent"]
    report: dict[str, Any] = {
        "options": run.options,
        "env": run.env,
        "join_attempts": attempts,
        "attack_share": attack["sent"] / attempts if attempts else None,
        "listeners": listeners,
        "answers": legit_answers(run),
        "estimates": _estimates(run),
        "fairness": _fairness(run),
        "start": start,
        "attack": attack,
        "cohort": cohort,
        "host": host,
        "outage": outage,
        "admission": _admission(run),
        "cpu_s": run.cpu,
        "cpu_wall_s": run.cpu_wall_s,
        "timeline": timeline(run),
    }
    report["targets"] = targets(report)
    return report


def _admission(run: RunData) -> dict[str, Any]:
    statuses = collections.Counter(s for *_, s in run.admission)
    on = [t - run.scheduled for t, mode, _, s in run.admission if s == 200 and mode]
    bits = sorted({b for _, _, b, s in run.admission if b is not None})
    return {
        "samples": len(run.admission),
        "status": {str(k): v for k, v in statuses.items()},
        "attack_mode_on_s": [min(on), max(on)] if on else None,
        "pow_bits": bits,
    }


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    attack = report["attack"]
    out.append((
        f"join attempts on loopback >= {TARGET_ATTEMPTS:,} (with the attack)",
        f"{report['join_attempts']:,} ({report['listeners']['join_requests']:,} legitimate, "
        f"{attack['sent']:,} attack = {100 * (report['attack_share'] or 0):.0f} %)",
        report["join_attempts"] >= TARGET_ATTEMPTS,
    ))  # fmt: skip
    out.append((
        "attack requests that reached Python: 0",
        f"{attack['reached_origin']:,} of {attack['logged']:,} logged at the edges "
        f"({attack['sent']:,} sent)",
        attack["reached_origin"] == 0 and attack["logged"] > 0,
    ))  # fmt: skip
    c = report["cohort"]
    out.append((
        "errors seen by listeners already playing: 0",
        f"{c['errors']} errors, {c['stalls']} stalls ({c['stall_s']:.1f} s) over "
        f"{c['playing']} listeners playing to the end",
        c["playing"] > 0 and c["errors"] == 0 and c["stalls"] == 0,
    ))  # fmt: skip
    h = report["host"]["all host actions"]
    p99 = h["latency_s"]["p99"]
    out.append((
        f"control-action latency p99 < {1000 * TARGET_CONTROL_P99_S:.0f} ms",
        "-" if p99 is None else
        f"p99 {1000 * p99:.0f} ms over {h['latency_s']['n']} actions ({h['failed']} failed)",
        p99 is not None and p99 < TARGET_CONTROL_P99_S and h["failed"] == 0,
    ))  # fmt: skip
    o = report["outage"]
    if o is not None:
        d = o["during"]
        ratio = d["ratio"]
        out.append((
            f"join attempts during the {d['seconds']:.0f} s outage <= "
            f"{TARGET_OUTAGE_RATIO:g} x the arrival rate",
            f"{d['join_attempts_per_s']:.1f}/s vs {d['arrivals_per_s']:.1f} arrivals/s"
            + ("" if ratio is None else f" = {ratio:.2f} x")
            + f" ({d['join_requests_per_s']:.1f} requests/s with the proofs of work)",
            ratio is not None and ratio <= TARGET_OUTAGE_RATIO,
        ))  # fmt: skip
    est = report["estimates"]
    share = est["undisturbed_within_25_percent"]
    out.append((
        f"wait estimates within 25 % of the wait: >= {100 * TARGET_ESTIMATE_SHARE:.0f} %",
        "-" if share is None else
        f"{100 * share:.0f} % of {est['undisturbed_n']:,} waits of 2 s or more (estimate / "
        f"wait p50 {est['undisturbed_estimate_over_actual']['p50']:.2f})",
        share is not None and share >= TARGET_ESTIMATE_SHARE,
    ))  # fmt: skip
    s = report["start"]
    delay = s["delay_s"]
    out.append((
        "start delay of the Space: 0 s",
        "-" if delay is None else
        f"{delay:.2f} s (start answered {s['start_request'].get('status')} in "
        f"{1000 * (s['start_request']['answered'] - s['start_request']['sent']):.0f} ms, "
        f"first listener in at +{s['first_admission_s']:.2f} s)",
        delay is not None and delay <= TARGET_START_DELAY_S,
    ))  # fmt: skip
    return out


# --- the table --------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{1000 * v:.0f} ms"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def print_table(report: dict[str, Any]) -> None:
    ls = report["listeners"]
    fa, fs = ls["first_audio_s"], ls["first_audio_from_start_s"]
    print()
    print("Flash crowd: legitimate listeners")
    rows = [
        ("listeners arrived (before the start)",
         f"{ls['arrived']:,} ({ls['arrived_before_start']:,})"),
        ("admitted / queued (before the start) / rejected",
         f"{ls['admitted']:,} / {ls['queued']:,} ({ls['queued_before_start']:,}) / "
         f"{ls['rejected']:,} {ls['rejected_by'] or ''}"),
        ("solved a proof of work", f"{ls['solved_pow']:,}"),
        ("join requests by kind", ", ".join(f"{k} {v:,}"
                                            for k, v in ls["join_requests_by_kind"].items())),
        ("join request latency p50 / p95 / p99",
         f"{_ms(ls['join_latency_s']['p50'])} / {_ms(ls['join_latency_s']['p95'])} / "
         f"{_ms(ls['join_latency_s']['p99'])}"),
        ("arrival -> first audio p50 / p95 / p99",
         f"{_s(fa['p50'])} / {_s(fa['p95'])} / {_s(fa['p99'])}"),
        ("  from the start for early arrivals",
         f"{_s(fs['p50'])} / {_s(fs['p95'])} / {_s(fs['p99'])}"),
    ]  # fmt: skip
    ans = report["answers"]
    st = report["start"]
    rows.append((
        "joins told 'not started yet' after the start",
        f"{st['prestart_answers_after_start']:,}"
        + ("" if st["last_prestart_answer_s"] is None else
           f" (the last at +{st['last_prestart_answer_s']:.2f} s)"),
    ))  # fmt: skip
    rows.append(("answers outside the rules (not in the outage)", str(ans["unexpected"] or 0)))
    rows.append(("answers during the outage", str(ans["during_outage"] or 0)))
    est = report["estimates"]
    if est["n"]:
        ratio = est["estimate_over_actual"]
        rows.append((
            "wait estimate / actual wait p50 (within 25 %)",
            f"{ratio['p50']:.2f} ({100 * (est['within_25_percent'] or 0):.0f} % of {est['n']:,})",
        ))  # fmt: skip
    if est["undisturbed_n"]:
        ratio = est["undisturbed_estimate_over_actual"]
        rows.append((
            "  when no error came in between",
            f"{ratio['p50']:.2f} ({100 * (est['undisturbed_within_25_percent'] or 0):.0f} % "
            f"of {est['undisturbed_n']:,})",
        ))  # fmt: skip
    fair = report["fairness"]
    if fair["prequeue_rank_correlation"] is not None:
        live = fair["live_line_rank_correlation"]
        rows.append((
            "arrival vs admission rank correlation",
            f"pre-queue {fair['prequeue_rank_correlation']:+.3f} (n={fair['prequeue_n']:,})"
            + ("" if live is None else f", live line {live:+.3f} (n={fair['live_line_n']:,})"),
        ))  # fmt: skip
    for label, value in rows:
        print(f"  {label:<50}{value}")

    print("\nAttack traffic (by the edges' access logs)")
    header = f"  {'kind':<16}{'sent':>8}{'logged':>8}{'at edge':>9}{'origin':>8}  edge answers"
    print(header)
    for kind, r in report["attack"]["by_kind"].items():
        answers = ", ".join(f"{k}:{v}" for k, v in r["edge_status"].items())
        origin = ", ".join(f"{k}:{v}" for k, v in r["origin_status"].items())
        print(
            f"  {kind:<16}{r['sent']:>8,}{r['logged']:>8,}{r['at_edge']:>9,}"
            f"{r['reached_origin']:>8,}  {answers}" + (f" | origin {origin}" if origin else "")
        )

    print("\nThe host and the rest of the platform (outside the outage)")
    print(f"  {'request':<22}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'failed':>8}")
    for what, r in report["host"].items():
        lat = r["latency_s"]
        print(
            f"  {what:<22}{lat['n']:>6}{_ms(lat['p50']):>9}{_ms(lat['p99']):>9}"
            f"{_ms(lat['max']):>9}{r['failed']:>8}"
        )
    c = report["cohort"]
    print(
        f"\nListeners playing throughout: {c['playing']} of {c['listeners']}, "
        f"{c['parts']:,} parts, {c['errors']} errors {c['error_kinds'] or ''}, "
        f"{c['stalls']} stalls, longest gap {c['max_gap_s']:.2f} s; heartbeats "
        f"{c['heartbeats_ok']}/{c['heartbeats']} ok ({c['heartbeats_failed_in_outage']} "
        "failed in the outage)"
    )
    lag, crowd_lag = c["loop_lag_s"], c["crowd_loop_lag_s"]
    print(
        f"  event-loop lag of their process p99 {_ms(lag['p99'])} max {_ms(lag['max'])} "
        f"({c['stalls_while_own_loop_lagged']} of the stalls while it lagged > "
        f"{1000 * LAG_S:.0f} ms); of the crowd's processes p99 {_ms(crowd_lag['p99'])} "
        f"max {_ms(crowd_lag['max'])}"
    )
    o = report["outage"]
    if o is not None:
        for when in ("before", "during", "after"):
            w = o[when]
            print(
                f"  outage {when:<7} {w['seconds']:>5.1f} s: {w['arrivals_per_s']:>6.1f} "
                f"arrivals/s, {w['join_attempts_per_s']:>6.1f} join attempts/s "
                f"({w['join_requests_per_s']:.1f} requests/s: {w['by_kind']})"
            )
    wall = report["cpu_wall_s"]
    if report["cpu_s"] and wall:
        print(f"\nCPU over the {wall:.0f} s of the run (cores busy on average)")
        cells = [f"{name} {cpu / wall:.2f}" for name, cpu in report["cpu_s"].items() if cpu >= 0.5]
        total = sum(report["cpu_s"].values()) / wall
        print("  " + ", ".join(cells) + f"; all {total:.2f} of {os.cpu_count()} cores")
        machine = [m for m in report["timeline"]["cpu_machine"] if m > 0]
        if machine:
            busy = pct(machine)
            full = sum(m >= 0.95 * (os.cpu_count() or 1) for m in machine)
            print(
                f"  the whole machine (anyone's processes): p50 {busy['p50']:.2f}, "
                f"p95 {busy['p95']:.2f} cores; {full} of {len(machine)} seconds at "
                f"{os.cpu_count()} cores"
            )
    adm = report["admission"]
    print(f"  admission document: {adm['status']}, attack mode on {adm['attack_mode_on_s']}, "
          f"bits {adm['pow_bits']}")  # fmt: skip
    print()
    for label, value, ok in report["targets"]:
        verdict = "-" if ok is None else ("PASS" if ok else "MISS")
        print(f"  {verdict:<5} {label}: {value}")


# --- the plot ---------------------------------------------------------------------------


def _legend(ax: Any, right: Any, loc: str) -> None:
    """One legend for a plot and its twin axis."""
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc=loc)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = report["timeline"]
    t = np.asarray(tl["t"]) + 0.5
    fig, axes = plt.subplots(5, 1, figsize=(13, 16), sharex=True)
    ax = axes[0]
    ax.plot(t, tl["arrivals"], color="#1a5d9c", label="arrivals/s")
    ax.plot(t, tl["admitted"], color="#27ae60", lw=2.0, label="admitted/s")
    ax.plot(t, tl["first_audio"], color="#8e44ad", lw=0.9, ls="--", label="first audio/s")
    ax.set_ylabel("listeners per second")
    right = ax.twinx()
    right.fill_between(t, tl["in_line"], color="#f5b041", alpha=0.3, step="mid", label="in line")
    right.set_ylabel("listeners in line")
    _legend(ax, right, "upper right")
    ax.set_title("Legitimate listeners: arrivals, admissions, the waiting room")

    ax = axes[1]
    for key, color, label in (
        ("first", "#1a5d9c", "first joins = arrivals (each then one with a proof of work)"),
        ("ticket", "#f39c12", "back from the waiting room (ticket)"),
        ("retry", "#c0392b", "retries after an error / 429 / 5xx"),
    ):
        ax.plot(t, tl[key], color=color, lw=1.2, label=label)
    ax.set_ylabel("legitimate join requests/s")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Join requests of the legitimate crowd (retry traffic)")

    ax = axes[2]
    ax.plot(t, tl["attack_edge"], color="#7f8c8d", label="attack requests stopped at the edge")
    ax.plot(t, tl["attack_origin"], color="#c0392b", label="attack requests that reached Python")
    ax.set_ylabel("attack requests/s")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(
        f"Attack traffic ({report['attack']['sent']:,} requests, "
        f"{report['attack']['reached_origin']:,} reached an origin)"
    )

    ax = axes[3]
    ax.plot(t, tl["cohort_playing"], color="#27ae60", label="cohort playing")
    ax.set_ylabel("listeners playing throughout")
    right = ax.twinx()
    right.step(t, np.cumsum(tl["cohort_trouble"]), color="#c0392b", where="mid",
               label="cohort errors + stalls (cumulative)")  # fmt: skip
    right.set_ylabel("errors + stalls")
    _legend(ax, right, "center right")
    ax.set_title("Listeners already playing")

    ax = axes[4]
    groups = [*CPU_GROUPS, "other"]
    colors = ["#1a5d9c", "#7f8c8d", "#8e44ad", "#16a085", "#f39c12", "#bdc3c7"]
    ax.stackplot(t, [tl[f"cpu_{g}"] for g in groups], labels=groups, colors=colors, alpha=0.8,
                 step="mid")  # fmt: skip
    ax.axhline(os.cpu_count() or 1, color="#2c3e50", lw=1, ls=":")
    ax.set_ylabel("cores busy")
    ax.legend(fontsize=8, loc="upper right", ncol=3)
    ax.set_title('Where the CPU went ("other": processes not of this run)')
    ax.set_xlabel("seconds from the scheduled start")

    outage = report["outage"]
    for ax in axes:
        ax.axvline(0, color="#2c3e50", ls="--", lw=1)
        if outage is not None:
            ax.axvspan(outage["began_s"], outage["ended_s"], color="#e74c3c", alpha=0.12)
    axes[0].text(0.3, 0.95, "scheduled start", transform=axes[0].get_xaxis_transform(),
                 fontsize=8, va="top")  # fmt: skip
    if outage is not None:
        axes[0].text(outage["began_s"] + 0.3, 0.95, "join path down",
                     transform=axes[0].get_xaxis_transform(), fontsize=8, va="top",
                     color="#c0392b")  # fmt: skip
    opts = report["options"]
    fig.suptitle(
        f"Flash crowd: {report['listeners']['arrived']:,} listeners, "
        f"{report['join_attempts']:,} join attempts ({100 * (report['attack_share'] or 0):.0f} % "
        f"attack), admit {opts.get('admit_per_s')}/s, PoW {opts.get('pow_bits')} bits",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=100)
    plt.close(fig)
