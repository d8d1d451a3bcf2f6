"""``tribune cluster up``: the scaled shape of Tribune on one machine.

    PostgreSQL + Redis          (shared state; devservers.py)
    1 media node                tribune serve, media on: stages, broadcasts, recordings
    2 API workers               tribune serve, TRIBUNE_MEDIA=false, TRIBUNE_MEDIA_URL=node:
                                the crowd's requests (joins, heartbeats, room state, reads),
                                at TRIBUNE_NICE=10 (the audio and the hosts come first)
    1 control worker            the same, for every other write (stage, moderation,
                                sign-in, WHIP): a crowd in the API workers cannot delay it
    2 edges                     nginx + njs + nchan from `tribune edge-config` (workers at
                                niceness -5 when started as root): listeners
                                come here; the media node pushes every part to their streams

all on 127.0.0.1, every process its own, sharing one secret and one data directory (so
replays work from any worker). Operators see what runs where; tests drive it through
``running_cluster``. Ctrl-C (or the end of the ``with`` block) stops everything.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tribune.devservers import free_port, running_postgres, running_redis

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")


@dataclass
class Cluster:
    edges: list[str]
    api_workers: list[str]
    media_node: str
    redis_url: str
    database_url: str
    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: the edges send writes other than the crowd's here (``--control-origin``)
    control_workers: list[str] = field(default_factory=list)

    def stop(self, name: str) -> None:
        """Stop one process (``edge-1``, ``api-2``, ``media``...), as a failure would."""
        _terminate(self.processes[name])


def _tribune() -> list[str]:
    return [sys.executable, "-m", "tribune.cli"]


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status < 500:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{url} did not come up (exit {proc.poll()}):\n{tail}")
        time.sleep(0.1)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_cluster(
    directory: Path,
    *,
    api_workers: int = 2,
    control_workers: int = 1,
    edges: int = 2,
    env: Mapping[str, str] | None = None,
    edge_flags: Sequence[str] = (),
) -> Iterator[Cluster]:
    """Start the whole cluster under ``directory``; yields it once every part answers.

    ``env``: more ``TRIBUNE_*`` settings for every process (attack mode, admission
    limits...); ``edge_flags``: more ``tribune edge-config`` flags for every edge (e.g.
    per-address limits raised for a load generator that sends everything from one address).
    ``control_workers`` 0: the API workers serve every request.
    """
    nginx = shutil.which("nginx")
    if nginx is None or not NJS_MODULE.exists() or not NCHAN_MODULE.exists():
        raise RuntimeError(
            "the edges need nginx with njs and nchan (Debian: apt-get install nginx-light "
            "libnginx-mod-http-js libnginx-mod-nchan)"
        )
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(running_redis(directory))
        database_url = stack.enter_context(running_postgres("tribune", directory))
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRIBUNE_")},
            "TRIBUNE_SECRET_KEY": secrets.token_hex(32),
            "TRIBUNE_DATA_DIR": str(directory / "data"),
            "TRIBUNE_DATABASE_URL": database_url,
            "TRIBUNE_REDIS_URL": redis_url,
            "TRIBUNE_HOST": "127.0.0.1",
            **(env or {}),
        }
        # The edges' marks (a file per join that passes with a proof of work or a ticket)
        # in memory, as /run would hold them on a production edge.
        shm = Path("/dev/shm")  # noqa: S108 - a fresh directory of our own (mkdtemp)
        marks = Path(tempfile.mkdtemp(prefix="tribune-marks-", dir=shm if shm.is_dir() else None))
        marks.chmod(0o755)
        stack.callback(shutil.rmtree, marks, ignore_errors=True)  # after the edges stop
        processes: dict[str, subprocess.Popen[bytes]] = {}

        def stop_all() -> None:
            for proc in reversed(list(processes.values())):
                _terminate(proc)

        stack.callback(stop_all)

        def serve(name: str, port: int, extra: dict[str, str]) -> str:
            log = logs / f"{name}.log"
            with log.open("ab") as out:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(
                    [*_tribune(), "serve", "--port", str(port)],
                    env={**base, **extra, "TRIBUNE_PORT": str(port)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes[name] = proc
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/api/health", proc, log)
            return url

        # The media node first: it applies the migrations before anyone else connects.
        # It pushes every part to the edges' streams (their ports are chosen now).
        edge_ports = [free_port() for _ in range(edges)]
        feeds = ",".join(f"http://127.0.0.1:{port}" for port in edge_ports)
        media = serve("media", free_port(), {"TRIBUNE_MEDIA": "true", "TRIBUNE_EDGES": feeds})
        worker = {"TRIBUNE_MEDIA": "false", "TRIBUNE_MEDIA_URL": media}
        # The crowd's workers yield the CPU (TRIBUNE_NICE): on one machine, the audio, the
        # edges and the hosts' actions come first when a crowd saturates it.
        crowd = {**worker, "TRIBUNE_NICE": base.get("TRIBUNE_NICE", "10")}
        apis = [serve(f"api-{n}", free_port(), crowd) for n in range(1, api_workers + 1)]
        controls = [
            serve(f"control-{n}", free_port(), worker) for n in range(1, control_workers + 1)
        ]
        edge_urls = []
        for n in range(1, edges + 1):
            home = directory / f"edge-{n}"
            (home / "cache").mkdir(parents=True, exist_ok=True)
            for path in (directory, home, home / "cache"):
                path.chmod(0o755)  # the workers run as nobody when started as root
            port = edge_ports[n - 1]
            cmd = [
                *_tribune(), "edge-config", "--out", str(home / "nginx.conf"),
                *(arg for api in apis for arg in ("--origin", api)),
                *(arg for url in controls for arg in ("--control-origin", url)),
                "--media-origin", media, "--listen", f"127.0.0.1:{port}",
                "--cache-dir", str(home / "cache"), "--marks-dir", str(marks),
                "--pid", str(home / "nginx.pid"), "--error-log", str(home / "error.log"),
                "--access-log", str(home / "access.log"),
                # The edges serve the audio: on this shared machine their workers come first
                # (a negative niceness needs root; otherwise they share alike).
                "--worker-priority", "-5" if os.geteuid() == 0 else "0",
                *edge_flags,
            ]  # fmt: skip
            subprocess.run(cmd, env=base, check=True, stdout=subprocess.DEVNULL)
            with (logs / f"edge-{n}.log").open("ab") as out:
                proc = subprocess.Popen(
                    [nginx, "-c", str(home / "nginx.conf"), "-g", "daemon off;"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes[f"edge-{n}"] = proc
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/api/health", proc, home / "error.log")
            edge_urls.append(url)
        yield Cluster(
            edge_urls, apis, media, redis_url, database_url, directory, processes, controls
        )


def up(directory: Path) -> int:
    """Start the cluster, say where everything is, and run until interrupted."""
    print(
        "starting PostgreSQL, Redis, a media node, 2 API workers, a control worker and 2 edges ...",
        flush=True,
    )
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupted)
    with running_cluster(directory) as cluster:
        print(
            "Tribune cluster is up. Point a browser at an edge:\n"
            + "".join(f"  edge {n}: {url}/\n" for n, url in enumerate(cluster.edges, 1))
            + f"  API workers (behind the edges): {', '.join(cluster.api_workers)}\n"
            + f"  control worker (writes but the crowd's): {', '.join(cluster.control_workers)}\n"
            + f"  media node (stages, broadcasts, recordings): {cluster.media_node}\n"
            + f"  Redis {cluster.redis_url}, PostgreSQL {cluster.database_url}\n"
            + f"  logs in {cluster.directory / 'logs'}; Ctrl-C stops everything.",
            flush=True,
        )
        try:
            while not stop and all(p.poll() is None for p in cluster.processes.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        dead = [n for n, p in cluster.processes.items() if p.poll() is not None]
        if dead and not stop:
            print(f"stopping: {', '.join(dead)} exited (see the logs)", flush=True)
    return 0
