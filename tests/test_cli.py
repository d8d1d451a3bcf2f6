"""`tribune serve` as a newcomer runs it: a real process, the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.postgres import free_port


def test_serve_starts_on_the_embedded_default_and_stops_cleanly(tmp_path: Path):
    """Creates data/ with a SQLite file and a secret, answers /docs and the API, exits on TERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUNE_")}
    tribune = Path(sys.executable).parent / "tribune"
    proc = subprocess.Popen(
        [str(tribune), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{url}/docs").status_code == 200
        assert "Tribune" in httpx.get(f"{url}/").text
        assert (tmp_path / "data" / "tribune.db").exists()
        assert (tmp_path / "data" / "secret.key").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert proc.returncode in (0, -15), out
    assert "Application shutdown complete" in out
    assert f"http://127.0.0.1:{port}/" in out
