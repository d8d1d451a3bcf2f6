"""A real, throw-away Redis server for the tests (Debian's redis-server package, installed
on first use if missing)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tribune import devservers


@contextlib.contextmanager
def running_redis() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        script = Path(__file__).parent.parent / "scripts" / "system-deps.sh"
        subprocess.run(["bash", str(script), "redis-server"], check=True)
    with devservers.running_redis() as url:
        yield url
