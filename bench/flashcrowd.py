"""Flash crowd: a scheduled Space at 8 pm, its audience and an attack, on the cluster.

    .venv/bin/python bench/flashcrowd.py                  # about 4 minutes
    .venv/bin/python bench/flashcrowd.py --listeners 3000 --duration 60 --outage 10

The cluster is ``tribune cluster up``'s (``tribune.cluster.running_cluster``: PostgreSQL,
Redis, a media node, 2 API workers, a control worker, 2 nginx edges on 127.0.0.1), in
attack mode with a low proof-of-work difficulty (``--pow-bits``, 8: the simulated crowd's
CPU is not what is measured here; bench/pow_browser.py times the browser at the real
setting) and the admission limits of the run (``--admit-per-s``, ``--max-listeners``).

The run, on the wall clock (``--duration`` compresses "five minutes" around 8 pm):

1. A host signs up and schedules a Space ``--start-at`` seconds into the window. At that
   second the host starts it (timed) and publishes audio over WHIP through an edge
   (an aiortc MarkerTrack, as bench/fanout.py does).
2. ``--listeners`` legitimate listeners arrive over the window, rising to a peak just
   after the start, each from an address of its own in 127.16.0.0/12 (Linux routes all
   of 127/8 to lo, so the edges' per-address limits see a crowd). They follow the
   honest client's rules (bench/_flashcrowd_client.py): a 403 proof-of-work challenge is
   solved, a 503 waiting room is waited out (Retry-After plus up to 25 % jitter, newest
   ticket), a 5xx without Retry-After or a network error backs off exponentially with
   full jitter from 1 s to 30 s. Once admitted each opens the stream (``urls.stream``)
   and records when its first whole part arrived, then closes it; ``--cohort`` of them,
   drawn among the early arrivals and run in a process of their own, keep playing to
   the end (heartbeating) and count every error and stall.
3. Attack traffic over the whole window, sized to ``--attack-share`` of the join
   attempts a healthy run makes (``--requests-per-listener``), from addresses of its own
   (bench/_flashcrowd_attack.py): forged listener tokens, tickets and proofs of work;
   replays of legitimate tokens, admitted tickets and spent proofs of work; a flood from
   4 addresses; junk (random paths, garbage and oversized bodies, wrong methods).
4. From the start on, the host moderates (ask to speak -> accept -> mute -> unmute ->
   demote, then a removal, and again), every request timed, through the edges to the
   control worker (writes), on through the outage; probes time a guest joining
   another live Space, the listing of live Spaces and signing in
   (bench/_flashcrowd_host.py).
5. ``--outage-after`` seconds after the start both API workers go down for ``--outage``
   seconds (``--outage-mode stop``: killed, then started again with the same command and
   environment; ``pause``: SIGSTOP / SIGCONT). The control worker stays up: the host's
   moderation goes on; the probes wait the outage out; the crowd does what its rules say.

Reported (a table, bench/results/flashcrowd.json and flashcrowd.png; the figures are
computed in bench/_flashcrowd_report.py, whose docstrings say how): arrival to first
audio p50/p95/p99; admitted, queued and rejected listeners; every answer a listener got
that its rules do not expect; the join requests' latency; the waiting room's estimates
against the waits; arrival order against admission order; attack requests that reached
Python, by kind, from the edges' access logs; errors and stalls of the listeners playing
throughout; the host's control-action latency and the probes'; the crowd's join attempts
per second during the outage against the arrival rate; the start delay; where the CPU
went, second by second. Targets (issue 6): 0 attack requests at Python, 0 errors or
stalls for listeners playing, control actions p99 < 500 ms (none failing), join attempts
during the outage <= 1.1 x arrivals, start delay 0 s (<= 1 s here), >= 50,000 join
attempts. ``--dump FILE`` pickles every request for digging; ``--logs DIR`` keeps the
cluster's logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import pickle
import platform
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from _flashcrowd_attack import plan_kinds  # noqa: E402
from _flashcrowd_cluster import CpuMeter, Outage, cluster_with, read_access_logs  # noqa: E402
from _flashcrowd_crowd import CrowdPlan, worker_main  # noqa: E402
from _flashcrowd_host import (  # noqa: E402
    HostPlan,
    Publisher,
    end_space,
    host_main,
    set_up,
    start_on_time,
)
from _flashcrowd_report import RunData, analyse, plot, print_table  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Options:
    listeners: int = 13_000
    #: the arrival window ("five minutes" compressed), s
    duration: float = 120.0
    #: the scheduled start, s into the window
    start_at: float = 40.0
    attack_share: float = 0.3
    #: join requests a legitimate listener makes on average (to size the attack)
    requests_per_listener: float = 3.5
    cohort: int = 300
    procs: int = 2
    admit_per_s: float = 500.0
    max_listeners: int = 100_000
    pow_bits: int = 8
    attack_mode: str = "on"
    #: the outage of the join path: when (s after the start), how long (0: none), how
    outage_after: float = 25.0
    outage: float = 30.0
    outage_mode: str = "stop"
    #: a listener gives up this long after arriving
    patience: float = 180.0
    #: after the arrival window, the longest the run goes on
    drain: float = 45.0
    seed: int = 1
    quiet: bool = False
    #: write the raw run (pickle) here, for digging into it
    dump: str | None = None
    #: copy the cluster's logs (every process's, the edges' error logs) here
    logs: str | None = None

    def cluster_env(self) -> dict[str, str]:
        return {
            "TRIBUNE_ATTACK_MODE": self.attack_mode,
            "TRIBUNE_POW_BITS": str(self.pow_bits),
            "TRIBUNE_ADMIT_PER_S": f"{self.admit_per_s:g}",
            "TRIBUNE_MAX_LISTENERS": str(self.max_listeners),
            "TRIBUNE_OPERATOR_KEY": secrets.token_urlsafe(24),
        }


def arrival_offsets(n: int, duration: float, start_at: float, seed: int) -> np.ndarray:
    """``n`` arrival times in ``[0, duration)``, sorted: a steady trickle, rising towards
    the start and peaking just after it (the notification goes out), then decaying."""
    grid = np.linspace(0.0, duration, 4001)
    peak = start_at + duration / 40
    width = np.where(grid < peak, duration / 6, duration / 5)
    intensity = 0.12 + np.exp(-0.5 * ((grid - peak) / width) ** 2)
    cdf = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) / 2)])
    cdf /= cdf[-1]
    rng = np.random.default_rng(seed)
    return np.sort(np.interp(rng.random(n), cdf, grid))


def _cohort(offsets: np.ndarray, start_at: float, n: int, seed: int) -> list[int]:
    """Which listeners play throughout: ``n`` drawn from those who arrive before the start
    (then the first after it, if too few came early)."""
    early = [i for i, o in enumerate(offsets) if o < start_at]
    rng = np.random.default_rng(seed + 7)
    chosen = [int(i) for i in rng.permutation(early)[:n]]
    later = [i for i, o in enumerate(offsets) if o >= start_at]
    return chosen + later[: n - len(chosen)]


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _edges_answer(edges: list[str], within: float = 30.0) -> None:
    """Wait until every edge passes an API request to a worker again."""
    deadline = time.monotonic() + within
    for edge in edges:
        while True:
            try:
                with urllib.request.urlopen(f"{edge}/api/spaces?state=live", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


def run_on(cluster: Any, opts: Options, *, env: dict[str, str] | None = None) -> RunData:
    """One flash crowd on a running cluster (whose API workers have ``opts``' settings)."""
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    api_up = ctx.Event()
    api_up.set()
    # the crowd's processes, one more for the listeners playing throughout, the host's
    workers = opts.procs + 1
    inboxes = [ctx.Queue() for _ in range(workers + 1)]
    procs = [
        ctx.Process(target=worker_main, args=(w, inboxes[w], out), daemon=True)
        for w in range(workers)
    ]
    procs.append(ctx.Process(target=host_main, args=(inboxes[-1], api_up, out), daemon=True))
    for p in procs:
        p.start()
    finished = False
    try:
        run = _run(cluster, opts, env or {}, out, api_up, inboxes, procs)
        finished = True
        return run
    finally:
        for p in procs:
            p.join(timeout=10 if finished else 0.1)
            if p.is_alive():
                p.kill()


def _run(
    cluster: Any,
    opts: Options,
    env: dict[str, str],
    out: Any,
    api_up: Any,
    inboxes: list[Any],
    procs: list[Any],
) -> RunData:
    import asyncio

    workers = opts.procs + 1
    ready: set[Any] = set()
    while len(ready) < len(procs):  # imports done: the schedule will hold
        try:
            _, who, _ = out.get(timeout=60)
        except queue.Empty:
            raise RuntimeError("the crowd's processes did not start in 60 s") from None
        ready.add(who)
    # the first arrivals come a second after the Space is made
    setup = asyncio.run(set_up(cluster.api_workers[0], 1.0 + opts.start_at))
    t0 = setup.scheduled - opts.start_at
    arrivals_end = t0 + opts.duration
    until = arrivals_end + opts.drain
    offsets = arrival_offsets(opts.listeners, opts.duration, opts.start_at, opts.seed)
    attack_total = round(
        opts.attack_share / (1 - opts.attack_share) * opts.listeners * opts.requests_per_listener
    )
    edges = [_address(e) for e in cluster.edges]
    cohort = set(_cohort(offsets, opts.start_at, opts.cohort, opts.seed))
    crowd = [i for i in range(len(offsets)) if i not in cohort]
    for w in range(workers):
        playing = w == opts.procs  # the listeners playing throughout, and nothing else
        mine = sorted(cohort) if playing else crowd[w :: opts.procs]
        attack = plan_kinds(
            attack_total,
            begin=t0,
            end=arrivals_end,
            replay_begin=setup.scheduled + 2,
            procs=opts.procs,
            worker=w,
        )
        inboxes[w].put(
            CrowdPlan(
                worker=w,
                edges=edges,
                space_id=setup.space_id,
                arrivals=[(i, t0 + float(offsets[i])) for i in mine],
                cohort=len(mine) if playing else 0,
                until=until,
                patience_s=opts.patience,
                attack=[] if playing else attack,
                seed=opts.seed * 1000 + w,
            )
        )
    inboxes[-1].put(
        # the host moderates from the start while the crowd comes in and the line drains
        HostPlan(cluster.edges, setup, begin=setup.scheduled + 1, until=until - 2, seed=opts.seed)
    )

    started: dict[str, Any] = {}
    publisher = Publisher(cluster.edges[0], setup)

    def go_live() -> None:
        started.update(start_on_time(cluster.edges[0], setup))
        if started.get("status") == 200:
            started["publish_s"] = publisher.start()

    threads = [threading.Thread(target=go_live, daemon=True)]
    outage = Outage(cluster, opts.outage_mode) if opts.outage > 0 else None

    def down() -> None:
        assert outage is not None
        time.sleep(max(0.0, setup.scheduled + opts.outage_after - time.time()))
        api_up.clear()
        try:
            outage.begin()
            time.sleep(opts.outage)
        finally:
            outage.end()
            _edges_answer(cluster.edges)
            api_up.set()

    if outage is not None:
        threads.append(threading.Thread(target=down, daemon=True))
    for thread in threads:
        thread.start()
    labels = {p.pid: f"crowd-{w}" for w, p in enumerate(procs[: opts.procs])}
    labels |= {procs[opts.procs].pid: "players (cohort)", procs[-1].pid: "host + probes"}
    meter = CpuMeter(lambda: labels | {p.pid: n for n, p in cluster.processes.items()})
    try:
        with meter:
            results = _collect(out, procs, until + 90, setup.scheduled, api_up, opts.quiet)
    finally:
        for thread in threads:
            thread.join(timeout=opts.outage + 120)
        ended = end_space(cluster.edges[0], setup) if api_up.is_set() else {"status": None}
        publisher.stop()
    missing = [p for p in range(workers) if p not in results]
    if missing or "host" not in results:
        raise RuntimeError(f"flash crowd processes gave no results: {missing or 'host'}")
    return RunData(
        options=dataclasses.asdict(opts),
        t0=t0,
        scheduled=setup.scheduled,
        arrivals_end=arrivals_end,
        until=until,
        listeners=[x for w in range(workers) for x in results[w]["listeners"]],
        attack=[tuple(a) for w in range(workers) for a in results[w]["attack"]],
        lag={w: results[w]["lag"] for w in range(workers)},
        host=[tuple(r) for r in results["host"]["records"]],
        admission=[tuple(a) for a in results["host"]["admission"]],
        start={k: v for k, v in started.items() if k != "publish_s"},
        end=ended,
        outage=(outage.began, outage.ended) if outage is not None and outage.ended else None,
        log=read_access_logs(cluster, since=t0 - 5),
        publish_s=started.get("publish_s"),
        cpu=meter.seconds(),
        cpu_wall_s=meter.ended - meter.began,
        cpu_series=meter.per_second(),
        env={k: v for k, v in env.items() if k != "TRIBUNE_OPERATOR_KEY"},
    )


def _collect(
    out: Any, procs: list[Any], deadline: float, scheduled: float, api_up: Any, quiet: bool
) -> dict[Any, Any]:
    """Every process's results (and a progress line every few seconds meanwhile)."""
    results: dict[Any, Any] = {}
    latest: dict[Any, dict[str, Any]] = {}
    last_print = 0.0
    tty = sys.stderr.isatty()
    while len(results) < len(procs) and time.time() < deadline:
        try:
            kind, who, data = out.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
            continue
        if kind == "tick":
            latest[who] = data
        elif kind == "done":
            results[who] = data
        else:
            raise RuntimeError(f"flash crowd process {who} failed: {data}")
        now = time.time()
        if not quiet and latest and (tty or now - last_print >= 5):
            last_print = now
            total = {k: sum(d[k] for d in latest.values()) for k in next(iter(latest.values()))}
            line = (
                f"t={now - scheduled:+6.0f} s  arrived {total['arrived']:>6}  "
                f"admitted {total['admitted']:>6}  audio {total['audio']:>6}  "
                f"failed {total['failed']:>4}  joins {total['join_requests']:>6}  "
                f"attack {total['attack_sent']:>6}  playing {total['cohort_playing']:>4}"
                + ("  [join path down]" if not api_up.is_set() else "")
            )
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr,
                  flush=True)  # fmt: skip
    if tty and not quiet:
        print(file=sys.stderr)
    return results


def keep_logs(cluster: Any, to: Path) -> None:
    """The cluster's logs (each process's output, the edges' error and access logs)."""
    to.mkdir(parents=True, exist_ok=True)
    home = Path(cluster.directory)
    for log in (home / "logs").glob("*.log"):
        shutil.copy(log, to / log.name)
    for n in range(1, len(cluster.edges) + 1):
        for name in ("error.log", "access.log"):
            if (home / f"edge-{n}" / name).exists():
                shutil.copy(home / f"edge-{n}" / name, to / f"edge-{n}-{name}")


def parse_args(argv: list[str] | None) -> Options:
    d = Options()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--listeners", type=int, default=d.listeners, help="legitimate listeners")
    add("--duration", type=float, default=d.duration, help="arrival window, s")
    add("--start-at", type=float, default=d.start_at, help="scheduled start, s into it")
    add("--attack-share", type=float, default=d.attack_share)
    add("--requests-per-listener", type=float, default=d.requests_per_listener,
        help="expected join requests per listener (sizes the attack)")  # fmt: skip
    add("--cohort", type=int, default=d.cohort, help="listeners that play to the end")
    add("--procs", type=int, default=d.procs, help="crowd processes")
    add("--admit-per-s", type=float, default=d.admit_per_s)
    add("--max-listeners", type=int, default=d.max_listeners)
    add("--pow-bits", type=int, default=d.pow_bits)
    add("--attack-mode", choices=["on", "auto", "off"], default=d.attack_mode)
    add("--outage-after", type=float, default=d.outage_after, help="s after the start")
    add("--outage", type=float, default=d.outage, help="s (0: no outage)")
    add("--outage-mode", choices=["stop", "pause"], default=d.outage_mode)
    add("--patience", type=float, default=d.patience)
    add("--drain", type=float, default=d.drain)
    add("--seed", type=int, default=d.seed)
    add("--dump", help="also pickle the raw run (every request) to this file")
    add("--logs", help="copy the cluster's logs to this directory")
    ns = parser.parse_args(argv)
    if not 0 <= ns.attack_share < 1 or ns.listeners < 10 or ns.procs < 1:
        parser.error("need 0 <= --attack-share < 1, --listeners >= 10, --procs >= 1")
    if not 0 < ns.start_at < ns.duration or ns.start_at != int(ns.start_at):
        parser.error("--start-at must be a whole number of seconds inside the window")
    return Options(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Options)
                      if hasattr(ns, f.name)})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.monotonic()
    env = opts.cluster_env()
    with tempfile.TemporaryDirectory(prefix="tribune-flashcrowd-") as tmp:
        Path(tmp).chmod(0o755)  # nginx's workers run as nobody
        print(f"starting the cluster (attack mode {opts.attack_mode}, PoW {opts.pow_bits} bits, "
              f"admit {opts.admit_per_s:g}/s) ...", flush=True)  # fmt: skip
        with cluster_with(Path(tmp) / "cluster", env) as cluster:
            print(f"flash crowd: {opts.listeners:,} listeners over {opts.duration:g} s, start at "
                  f"+{opts.start_at:g} s, outage {opts.outage:g} s at start "
                  f"+{opts.outage_after:g} s ...", flush=True)  # fmt: skip
            try:
                run = run_on(cluster, opts, env=env)
            finally:
                if opts.logs:
                    keep_logs(cluster, Path(opts.logs))
    if opts.dump:
        with open(opts.dump, "wb") as f:
            pickle.dump(run, f)
    report = analyse(run)
    report["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(),
                         "load_after": os.getloadavg()}  # fmt: skip
    print_table(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "flashcrowd.json").write_text(json.dumps(report, indent=1, default=str))
    plot(report, RESULTS_DIR / "flashcrowd.png")
    print(f"\nwrote {RESULTS_DIR / 'flashcrowd.json'} and flashcrowd.png "
          f"in {time.monotonic() - began:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
