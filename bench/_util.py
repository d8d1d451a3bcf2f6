"""Shared helpers for the benchmarks: wrk, ports, pinned server processes."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


class BenchError(RuntimeError):
    """A benchmark could not run (not a slow result: a broken set-up)."""


def ensure_wrk() -> str:
    """Return the path of wrk, installing Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get (Debian package 'wrk') ...", flush=True)
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is still not on PATH after apt-get install wrk")
    return found


def require_taskset() -> str:
    found = shutil.which("taskset")
    if not found:
        raise BenchError("taskset (util-linux) is needed to pin the server and wrk to CPUs")
    return found


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].strip() if first else "unknown"


#: clock ticks per second, the unit of CPU times in /proc
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    """One process as /proc/{pid}/stat shows it; CPU times in seconds."""

    ppid: int
    name: str
    #: user + system of all its threads
    cpu: float
    #: user + system of the children it has waited for
    reaped: float


def processes() -> dict[int, Proc]:
    """Every living process, from one pass over /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = Proc(
            int(fields[1]),
            name,
            (int(fields[11]) + int(fields[12])) / CLOCK_TICK,
            (int(fields[13]) + int(fields[14])) / CLOCK_TICK,
        )
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of ``pid`` and its living descendants."""
    table = processes()
    children: dict[int, list[int]] = {}
    for child, proc in table.items():
        children.setdefault(proc.ppid, []).append(child)
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in table:
            total += table[p].cpu
        todo += children.get(p, [])
    return total


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class ReadyCheck:
    """The request that must answer 2xx before a server counts as up."""

    method: str
    path: str
    json_body: Any = None


@contextlib.contextmanager
def pinned_process(
    cmd: Sequence[str],
    *,
    cpu: int,
    port: int,
    ready: ReadyCheck,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``cmd`` pinned to ``cpu``, wait until it answers, yield its base URL and the
    process (for its CPU accounting), stop it."""
    taskset = require_taskset()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [taskset, "-c", str(cpu), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, base_url, ready, log_path, timeout)
        yield base_url, proc
    finally:
        stop_group(proc)


@contextlib.contextmanager
def pinned_server(
    cmd: Sequence[str],
    *,
    cpu: int,
    port: int,
    ready: ReadyCheck,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """:func:`pinned_process` when only the base URL matters."""
    with pinned_process(
        cmd, cpu=cpu, port=port, ready=ready, log_path=log_path, env=env, cwd=cwd, timeout=timeout
    ) as (base_url, _):
        yield base_url


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any TRIBUNE_* of the caller, one worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUNE_")}
    env["WEB_CONCURRENCY"] = "1"  # uvicorn reads it as its default worker count
    # Benchmarks measure capacity: admission control (the waiting room) must not queue
    # their simulated crowds. Its check still runs on every join, only never says wait.
    env["TRIBUNE_ADMIT_PER_S"] = "1000000000"
    env["TRIBUNE_MAX_LISTENERS"] = "0"
    # ... nor may attack mode take a benchmark's crowd for an attack (bench/flashcrowd.py
    # turns it on on purpose).
    env["TRIBUNE_ATTACK_MODE"] = "off"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def tribune_process(
    tribune_bin: Path, *, cpu: int, workdir: Path, demo: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``tribune serve`` on the embedded default, in a fresh data dir under ``workdir``,
    pinned to ``cpu`` (with the demo Space if ``demo``); yields its base URL and process
    once it answers."""
    port = free_port()
    data_dir = workdir / "tribune-data"
    data_dir.mkdir()
    env = server_env(
        {"TRIBUNE_DATA_DIR": str(data_dir), "TRIBUNE_SECRET_KEY": secrets.token_hex(32)}
    )
    cmd = [str(tribune_bin), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with pinned_process(
        cmd + (["--demo"] if demo else []),
        cpu=cpu,
        port=port,
        ready=ReadyCheck("GET", "/api/health"),
        log_path=workdir / "tribune.log",
        env=env,
        cwd=workdir,
    ) as running:
        yield running


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _wait_ready(
    proc: subprocess.Popen[bytes],
    base_url: str,
    ready: ReadyCheck,
    log_path: Path,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(
                    f"server exited with code {proc.returncode} before it was ready; "
                    f"last lines of its log:\n{_tail(log_path)}"
                )
            try:
                resp = client.request(ready.method, ready.path, json=ready.json_body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.is_success:
                    return
                last = f"HTTP {resp.status_code}"
            time.sleep(0.1)
    raise BenchError(
        f"server at {base_url} not ready after {timeout:.0f} s ({last}); "
        f"last lines of its log:\n{_tail(log_path)}"
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        return


# --- wrk --------------------------------------------------------------------------------

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_PCT_RE = re.compile(rf"^\s*(\d+(?:\.\d+)?)%\s+{_TIME}\s*$", re.MULTILINE)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL_RE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_STATUS_RE = re.compile(r"^TRIBUNE_STATUS ok=(\d+) other=(\d+) codes=(\S*)", re.MULTILINE)


@dataclass
class WrkResult:
    """One wrk run, as parsed from ``wrk --latency`` and the join.lua status line."""

    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    ok_2xx: int
    non_2xx: int
    wrk_non_2xx_3xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    status_codes: dict[str, int] = field(default_factory=dict)

    @property
    def responses(self) -> int:
        return self.ok_2xx + self.non_2xx

    @property
    def non_2xx_share(self) -> float:
        return self.non_2xx / self.responses if self.responses else 1.0

    @property
    def socket_error_count(self) -> int:
        return sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["non_2xx_share"] = self.non_2xx_share
        return data


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    pcts = {float(p): _ms(v, u) for p, v, u in _PCT_RE.findall(output)}
    rps = _RPS_RE.search(output)
    total = _TOTAL_RE.search(output)
    status = _STATUS_RE.search(output)
    if rps is None or total is None or status is None or 50.0 not in pcts or 99.0 not in pcts:
        raise BenchError(f"could not parse wrk's output:\n{output}")
    non2xx = _NON2XX_RE.search(output)
    sock = _SOCKET_RE.search(output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    codes: dict[str, int] = {}
    for item in filter(None, status.group(3).split(",")):
        code, n = item.split(":")
        codes[code] = int(n)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p50_ms=pcts[50.0],
        p99_ms=pcts[99.0],
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1e3,
        ok_2xx=int(status.group(1)),
        non_2xx=int(status.group(2)),
        wrk_non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        status_codes=codes,
    )


def run_wrk(
    wrk: str,
    url: str,
    *,
    script: Path,
    cpu: int,
    duration: float,
    connections: int,
    threads: int = 1,
) -> tuple[WrkResult, str]:
    """Run wrk pinned to ``cpu`` against ``url``; return the parsed result and raw output."""
    taskset = require_taskset()
    cmd = [
        taskset,
        "-c",
        str(cpu),
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration))}s",
        "--timeout=5s",
        "--latency",
        f"--script={script}",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return parse_wrk(proc.stdout), proc.stdout


def venv_bin(name: str) -> Path:
    """A console script next to this interpreter (the project's venv)."""
    return Path(sys.executable).parent / name
