"""The cluster under the flash crowd: ``tribune.cluster.running_cluster`` with the
benchmark's settings (attack mode, a low proof-of-work difficulty, the admission limits of
the run), the outage of the join path, where the CPU went, and the edges' access logs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from _util import CLOCK_TICK, processes
from tribune.cluster import Cluster, running_cluster

API_WORKERS = ("api-1", "api-2")


@contextlib.contextmanager
def cluster_with(directory: Path, env: Mapping[str, str]) -> Iterator[Cluster]:
    """``running_cluster(directory)`` whose processes also get ``env`` (``TRIBUNE_*``)."""
    with running_cluster(directory, env=env) as cluster:
        yield cluster


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Outage:
    """Both API workers down: ``stop`` kills them (as a crash would) and starts them again
    with the same command and environment; ``pause`` SIGSTOPs and SIGCONTs them (a hung
    process: the kernel still accepts connections, nothing answers)."""

    cluster: Cluster
    mode: str = "stop"
    #: time.time() when they went down, and when they were back (answering)
    began: float = 0.0
    ended: float = 0.0
    _saved: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    def begin(self) -> None:
        self.began = time.time()
        for name in API_WORKERS:
            proc = self.cluster.processes[name]
            if self.mode == "pause":
                os.kill(proc.pid, signal.SIGSTOP)
                continue
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
            self._saved[name] = ([str(a) for a in proc.args], env)  # type: ignore[union-attr]
            proc.kill()
            proc.wait(10)

    def end(self, within: float = 60.0) -> None:
        for name in API_WORKERS:
            if self.mode == "pause":
                os.kill(self.cluster.processes[name].pid, signal.SIGCONT)
                continue
            args, env = self._saved[name]
            log = self.cluster.directory / "logs" / f"{name}.log"
            with log.open("ab") as out:
                # the cluster stops whatever is in its table when it ends
                self.cluster.processes[name] = subprocess.Popen(
                    args, env=env, stdout=out, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + within
        for url in self.cluster.api_workers:
            while not _health(url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"API worker {url} did not come back after the outage")
                time.sleep(0.05)
        self.ended = time.time()


# --- where the CPU went -------------------------------------------------------------------


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent busy (``/proc/stat``), anyone's."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICK


class CpuMeter:
    """CPU seconds of this process's children and their descendants (the cluster's
    processes by their names, PostgreSQL, Redis, the crowd), sampled every second so
    that a process which goes away (the outage) still counts up to its end."""

    def __init__(self, names: Callable[[], dict[int, str]]) -> None:
        #: pid -> name of the processes to name (the cluster's table changes in an outage)
        self.names = names
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.began = self.ended = 0.0
        #: (time.time(), CPU seconds so far by name, the whole machine's busy seconds)
        self.series: list[tuple[float, dict[str, float], float]] = []

    def sample(self) -> None:
        procs = processes()
        names = self.names()
        children: dict[int, list[int]] = {}
        for pid, proc in procs.items():
            children.setdefault(proc.ppid, []).append(pid)
        me = os.getpid()
        if me in procs:  # this process alone (the publisher, the log reading)
            self._first.setdefault(("bench (main)", me), procs[me].cpu)
            self._last[("bench (main)", me)] = procs[me].cpu
        for root in children.get(me, []):
            total, todo = 0.0, [root]
            while todo:
                pid = todo.pop()
                total += procs[pid].cpu + procs[pid].reaped if pid in procs else 0.0
                todo += children.get(pid, [])
            key = (names.get(root, procs[root].name), root)
            self._first.setdefault(key, total)
            self._last[key] = total
        self.series.append((time.time(), self.seconds(), _machine_busy()))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def __enter__(self) -> CpuMeter:
        self.began = time.time()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()
        self.ended = time.time()

    def per_second(self) -> list[tuple[float, dict[str, float], float]]:
        """Cores busy between samples: (time.time(), by name, the whole machine)."""
        out = []
        for (t0, a, m0), (t1, b, m1) in zip(self.series, self.series[1:], strict=False):
            span = max(1e-3, t1 - t0)
            used = {name: (b[name] - a.get(name, 0.0)) / span for name in b}
            out.append((t1, used, (m1 - m0) / span))
        return out

    def seconds(self) -> dict[str, float]:
        """CPU seconds by name over the metered time."""
        out: dict[str, float] = {}
        for (name, _), last in self._last.items():
            out[name] = out.get(name, 0.0) + last - self._first[(name, _)]
        return dict(sorted(out.items(), key=lambda item: -item[1]))


# --- the edges' access logs -------------------------------------------------------------

#: the edge's log_format tribune_edge (tribune.edge.config), leniently: what is needed
_LINE = re.compile(
    r'^(?P<addr>\S+) \[[^\]]*\] t=(?P<t>[\d.]+) "(?P<method>\S*) ?(?P<uri>\S*)[^"]*" '
    r"(?P<status>\d{3}) .*? upstream=(?P<up>.*?) upstream_time="
    r"(?:.*? upstream_status=(?P<ustatus>\S+))?"
)


@dataclass(frozen=True)
class LogLine:
    edge: int
    addr: str
    t: float
    method: str
    uri: str
    status: int
    #: the edge passed the request to an origin (``$upstream_addr`` has an address)
    upstream: bool
    #: what the origins answered ($upstream_status: "502" when none could be reached,
    #: several when it tried more than one); "" when nothing was passed on
    upstream_status: str = ""


def read_access_logs(cluster: Cluster, since: float) -> list[LogLine]:
    """Every request the edges logged from ``since`` (time.time())."""
    lines = []
    for n in range(1, len(cluster.edges) + 1):
        path = cluster.directory / f"edge-{n}" / "access.log"
        if not path.exists():
            continue
        with path.open(errors="replace") as f:
            for text in f:
                m = _LINE.match(text)
                if m is None or float(m["t"]) < since:
                    continue
                # "127.0.0.1:8001, 127.0.0.1:8002" when it tried two; the group's name
                # ("tribune_api") when none was up; "-" when it passed nothing on
                upstream = any(":" in up for up in m["up"].split(","))
                lines.append(
                    LogLine(n - 1, m["addr"], float(m["t"]), m["method"], m["uri"],
                            int(m["status"]), upstream, m["ustatus"] or "")
                )  # fmt: skip
    return lines
