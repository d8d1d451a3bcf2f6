"""A real, throw-away PostgreSQL server for the tests (Debian's postgresql package,
installed on first use if missing)."""

from __future__ import annotations

import contextlib
import glob
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tribune import devservers
from tribune.devservers import free_port

__all__ = ["free_port", "running_postgres"]


@contextlib.contextmanager
def running_postgres(database: str = "tribune") -> Iterator[str]:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        script = Path(__file__).parent.parent / "scripts" / "system-deps.sh"
        subprocess.run(["bash", str(script), "postgresql"], check=True)
    with devservers.running_postgres(database) as url:
        yield url
