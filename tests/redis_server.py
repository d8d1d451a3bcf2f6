"""A real, throw-away Redis server for the tests (Debian's redis-server package): no
persistence, a free loopback port, gone when the block ends."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.postgres import free_port


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        script = Path(__file__).parent.parent / "scripts" / "system-deps.sh"
        subprocess.run(["bash", str(script), "redis-server"], check=True)
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed and could not be installed")
    return found


@contextlib.contextmanager
def running_redis() -> Iterator[str]:
    """Yield ``redis://127.0.0.1:PORT/0`` for a fresh server."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="tribune-redis-"))
    proc = subprocess.Popen(
        [
            _binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(root), "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
