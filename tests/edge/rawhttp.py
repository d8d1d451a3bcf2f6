"""A bare HTTP/1.1 client for firing many identical requests at the same instant.

httpx spends about a millisecond of Python per request, so a hundred "concurrent" requests
leave it spread over a tenth of a second. Here the connections are opened first and the
requests are pre-built bytes written to every socket in one loop (microseconds apart);
responses are read as they come, each stamped with the time it was complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when the whole response had arrived
    done: float = field(default=0.0)


class RawPool:
    """``size`` keep-alive connections to one host; one request in flight on each."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> RawPool:
        self._conns = list(
            await asyncio.gather(
                *(asyncio.open_connection(self.host, self.port) for _ in range(self.size))
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self._conns:
            writer.close()
        for _, writer in self._conns:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def fire(self, paths: list[str]) -> list[RawResponse]:
        """Send ``paths[i]`` on connection ``i`` all at once; the responses, in order."""
        if len(paths) > len(self._conns):
            raise ValueError(f"{len(paths)} requests but only {len(self._conns)} connections")
        conns = self._conns[: len(paths)]
        for (_, writer), path in zip(conns, paths, strict=True):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        async with asyncio.timeout(15):
            return list(await asyncio.gather(*(_read(reader) for reader, _ in conns)))


async def _read(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        raise AssertionError(f"response without a length: {headers}")
    return RawResponse(status, headers, body, time.monotonic())
