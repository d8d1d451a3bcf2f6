"""Join benchmark: guest joins per second for one Tribune worker, beside this machine's ceiling.

How each figure is measured (all in one run, on this machine):

* Servers: each runs as a subprocess on a free 127.0.0.1 port, pinned to CPU 0 with
  ``taskset``; the load generator, ``wrk`` (1 thread, 64 connections by default), is
  pinned to CPU 1, so server and client never share a core.
* Tribune: ``tribune serve`` (one uvicorn worker, access log off) on its embedded
  default (SQLite in a fresh temporary data dir, in-process state). Set-up over HTTP:
  an account, an API token, and a live space that allows guests. The measured request
  is ``POST /api/spaces/<id>/join`` without credentials and with body ``{}``.
* Ceiling: ``bench/ceiling_app.py``, a bare Starlette app on uvicorn (one worker,
  uvloop + httptools, access log off) whose only POST route makes a random id,
  HMAC-SHA256-signs a small payload and answers 201 with a small orjson body.
* Each system gets a warm-up run (2 s, discarded), then the measured run (10 s).
* joins/s is wrk's ``Requests/sec`` for the measured run; p50 and p99 come from wrk's
  ``--latency`` distribution (time from sending a request to reading its response, per
  connection, so they include queueing at 64 concurrent connections).
* non-2xx is counted per response by ``bench/join.lua``; a run whose non-2xx share
  exceeds 1 % is INVALID and its targets are not judged.
* ratio is Tribune's joins/s divided by the ceiling's joins/s from the same run.

Targets (printed PASS/MISS; the exit code is 0 either way): >= 5,000 joins/s per
worker, and >= 0.4 of the ceiling. Results: ``bench/results/join.json`` and
``bench/results/join.png``.

Run: ``.venv/bin/python bench/join.py [--duration 10] [--connections 64]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _util import (
    BENCH_DIR,
    REPO_DIR,
    RESULTS_DIR,
    BenchError,
    ReadyCheck,
    WrkResult,
    cpu_model,
    ensure_wrk,
    free_port,
    pinned_server,
    require_taskset,
    run_wrk,
    server_env,
    tribune_process,
    venv_bin,
    version_of,
    wrk_version,
)

TARGET_JOINS_PER_SEC = 5_000.0
TARGET_RATIO = 0.4
MAX_NON_2XX_SHARE = 0.01
LUA_SCRIPT = BENCH_DIR / "join.lua"
JOIN_KEYS = ("listener_id", "listener_token", "expires_at")


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    server_cpu: int
    wrk_cpu: int
    tribune_bin: Path


@dataclass
class Measured:
    system: str
    result: WrkResult

    @property
    def valid(self) -> bool:
        return self.result.responses > 0 and self.result.non_2xx_share <= MAX_NON_2XX_SHARE


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="measured run, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded warm-up run, s")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    parser.add_argument("--wrk-cpu", type=int, default=1, help="CPU wrk is pinned to")
    parser.add_argument(
        "--tribune-bin",
        type=Path,
        default=venv_bin("tribune"),
        help="the tribune console script (default: the one next to this Python)",
    )
    ns = parser.parse_args(argv)
    if ns.duration < 1 or ns.warmup < 1 or ns.connections < 1:
        parser.error("--duration and --warmup must be >= 1 s, --connections >= 1")
    return Options(
        duration=ns.duration,
        warmup=ns.warmup,
        connections=ns.connections,
        server_cpu=ns.server_cpu,
        wrk_cpu=ns.wrk_cpu,
        tribune_bin=ns.tribune_bin,
    )


def ensure_tribune(opts: Options) -> None:
    """Install the project into this venv if its console script is not there yet."""
    if opts.tribune_bin.exists():
        return
    if opts.tribune_bin != venv_bin("tribune"):
        raise BenchError(f"--tribune-bin {opts.tribune_bin} does not exist")
    print("tribune is not installed in this venv: pip install -e . ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-e", str(REPO_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not opts.tribune_bin.exists():
        raise BenchError(f"pip install -e . failed:\n{proc.stdout}\n{proc.stderr}")


def check_join(url: str) -> None:
    """One join by hand before wrk, so a wrong endpoint fails loudly, not as 100 % errors."""
    resp = httpx.post(url, json={}, timeout=10.0)
    if resp.status_code != 201:
        raise BenchError(f"POST {url} answered {resp.status_code}: {resp.text[:500]}")
    missing = [k for k in JOIN_KEYS if k not in resp.json()]
    if missing:
        raise BenchError(f"POST {url} answered 201 without {missing}: {resp.text[:500]}")


def load(wrk: str, url: str, opts: Options, label: str) -> WrkResult:
    common: dict[str, Any] = {
        "script": LUA_SCRIPT,
        "cpu": opts.wrk_cpu,
        "connections": opts.connections,
    }
    print(f"  {label}: warm-up {opts.warmup:g} s ...", flush=True)
    run_wrk(wrk, url, duration=opts.warmup, **common)
    print(f"  {label}: measuring {opts.duration:g} s ...", flush=True)
    result, _raw = run_wrk(wrk, url, duration=opts.duration, **common)
    return result


def bench_ceiling(wrk: str, opts: Options, workdir: Path) -> WrkResult:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "ceiling_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    path = "/api/spaces/ceiling/join"
    with pinned_server(
        cmd,
        cpu=opts.server_cpu,
        port=port,
        ready=ReadyCheck("POST", path, {}),
        log_path=workdir / "ceiling.log",
        env=server_env(),
        cwd=REPO_DIR,
    ) as base_url:
        check_join(base_url + path)
        result = load(wrk, base_url + path, opts, "ceiling")
    if result.requests_per_sec <= 0:
        raise BenchError("the ceiling run completed no requests; nothing to compare against")
    return result


def set_up_space(base_url: str) -> str:
    """Account -> API token -> live space allowing guests; return the space id."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:

        def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            resp = client.post(path, json=body, headers=headers)
            if resp.status_code != 201:
                raise BenchError(f"set-up POST {path} answered {resp.status_code}: {resp.text}")
            data: dict[str, Any] = resp.json()
            return data

        account = post(
            "/api/accounts",
            {
                "username": "benchhost",
                "password": secrets.token_urlsafe(24),
                "display_name": "Bench Host",
            },
            {},
        )
        token = post("/api/tokens", {"name": "bench"}, {"X-CSRF-Token": account["csrf_token"]})
        client.cookies.clear()
        space = post(
            "/api/spaces",
            {"title": "Join benchmark", "description": "", "allow_guests": True},
            {"Authorization": f"Bearer {token['token']}"},
        )
    if space.get("state") != "live":
        raise BenchError(f"the benchmark space is not live: {space}")
    space_id: str = space["id"]
    return space_id


def bench_tribune(wrk: str, opts: Options, workdir: Path) -> WrkResult:
    with tribune_process(opts.tribune_bin, cpu=opts.server_cpu, workdir=workdir) as (
        base_url,
        _,
    ):
        space_id = set_up_space(base_url)
        url = f"{base_url}/api/spaces/{space_id}/join"
        check_join(url)
        return load(wrk, url, opts, "tribune")


# --- report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(ceiling: Measured, tribune: Measured) -> None:
    header = (
        f"{'system':<14}{'joins/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}"
        f"{'non-2xx':>10}{'sock err':>10}  status"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in (ceiling, tribune):
        r = row.result
        ratio = r.requests_per_sec / ceiling.result.requests_per_sec
        status = "ok" if row.valid else f"INVALID ({r.non_2xx_share:.1%} non-2xx)"
        print(
            f"{row.system:<14}{r.requests_per_sec:>11,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{ratio:>8.2f}{r.non_2xx:>10,}{r.socket_error_count:>10,}  {status}"
        )
        if r.status_codes:
            codes = ", ".join(f"{c}: {n:,}" for c, n in sorted(r.status_codes.items()))
            print(f"{'':<14}non-2xx by status: {codes}")


def judge(ceiling: Measured, tribune: Measured) -> dict[str, Any]:
    ratio = tribune.result.requests_per_sec / ceiling.result.requests_per_sec
    judged = ceiling.valid and tribune.valid
    targets = {
        "joins_per_sec": {
            "target": TARGET_JOINS_PER_SEC,
            "value": tribune.result.requests_per_sec,
            "verdict": verdict(tribune.result.requests_per_sec >= TARGET_JOINS_PER_SEC)
            if judged
            else "INVALID",
        },
        "ratio_to_ceiling": {
            "target": TARGET_RATIO,
            "value": ratio,
            "verdict": verdict(ratio >= TARGET_RATIO) if judged else "INVALID",
        },
    }
    print()
    print(
        f"target: >= {TARGET_JOINS_PER_SEC:,.0f} joins/s per worker   "
        f"got {tribune.result.requests_per_sec:>9,.0f}   {targets['joins_per_sec']['verdict']}"
    )
    print(
        f"target: >= {TARGET_RATIO:.2f} of the bare ceiling     "
        f"got {ratio:>9.2f}   {targets['ratio_to_ceiling']['verdict']}"
    )
    return targets


def plot(ceiling: Measured, tribune: Measured, opts: Options, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (ceiling, tribune)
    names = [m.system + ("" if m.valid else "\n(INVALID)") for m in rows]
    colors = ["#9aa5b1", "#2f6fb0"]
    fig, (ax_rps, ax_lat) = plt.subplots(1, 2, figsize=(10, 4.5))

    rps = [m.result.requests_per_sec for m in rows]
    bars = ax_rps.bar(names, rps, color=colors)
    ax_rps.bar_label(bars, labels=[f"{v:,.0f}" for v in rps], padding=3)
    lines = (
        (TARGET_JOINS_PER_SEC, f"target {TARGET_JOINS_PER_SEC:,.0f}/s", "#c0392b", "--"),
        (TARGET_RATIO * rps[0], f"target {TARGET_RATIO:g} x ceiling", "#e67e22", ":"),
    )
    for y, text, color, style in lines:
        ax_rps.axhline(y, color=color, ls=style, lw=1.2, label=text)
    ax_rps.legend(loc="upper right", fontsize=8)
    ax_rps.set_ylabel("joins per second (one worker)")
    ax_rps.set_ylim(0, max(*rps, TARGET_JOINS_PER_SEC) * 1.18)
    ax_rps.set_title("Throughput")

    width = 0.38
    xs = range(len(rows))
    p50 = [m.result.p50_ms for m in rows]
    p99 = [m.result.p99_ms for m in rows]
    b50 = ax_lat.bar([x - width / 2 for x in xs], p50, width, label="p50", color="#5dade2")
    b99 = ax_lat.bar([x + width / 2 for x in xs], p99, width, label="p99", color="#1a5276")
    ax_lat.bar_label(b50, labels=[f"{v:.2f}" for v in p50], padding=2, fontsize=8)
    ax_lat.bar_label(b99, labels=[f"{v:.2f}" for v in p99], padding=2, fontsize=8)
    ax_lat.set_xticks(list(xs), names)
    ax_lat.set_ylabel("latency, ms")
    ax_lat.set_ylim(0, max(*p99, 0.1) * 1.18)
    ax_lat.legend(loc="upper left")
    ax_lat.set_title(f"Latency at {opts.connections} connections")

    fig.suptitle(
        f"Guest join, POST /api/spaces/<id>/join: server on CPU {opts.server_cpu}, "
        f"wrk on CPU {opts.wrk_cpu}, {opts.duration:g} s",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        wrk = ensure_wrk()
        require_taskset()
        ensure_tribune(opts)
        if max(opts.server_cpu, opts.wrk_cpu) >= (os.cpu_count() or 1):
            raise BenchError(f"this machine has {os.cpu_count()} CPUs; pick others to pin to")
        print(
            f"join benchmark: wrk 1 thread x {opts.connections} connections, "
            f"{opts.warmup:g} s warm-up + {opts.duration:g} s measured per system",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="tribune-bench-") as tmp:
            workdir = Path(tmp)
            ceiling = Measured("bare ceiling", bench_ceiling(wrk, opts, workdir))
            tribune = Measured("tribune", bench_tribune(wrk, opts, workdir))
    except BenchError as exc:
        print(f"join benchmark could not run: {exc}", file=sys.stderr)
        return 2

    print_table(ceiling, tribune)
    targets = judge(ceiling, tribune)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = RESULTS_DIR / "join.png"
    out = RESULTS_DIR / "join.json"
    plot(ceiling, tribune, opts, png)
    report = {
        "benchmark": "join",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "wrk": wrk_version(wrk),
            "uvicorn": version_of("uvicorn"),
            "starlette": version_of("starlette"),
            "tribune": version_of("tribune"),
        },
        "params": {
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "connections": opts.connections,
            "wrk_threads": 1,
            "server_cpu": opts.server_cpu,
            "wrk_cpu": opts.wrk_cpu,
        },
        "ceiling": {**ceiling.result.to_json(), "valid": ceiling.valid},
        "tribune": {**tribune.result.to_json(), "valid": tribune.valid},
        "ratio_to_ceiling": tribune.result.requests_per_sec / ceiling.result.requests_per_sec,
        "targets": targets,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {png.relative_to(REPO_DIR)} and {out.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
