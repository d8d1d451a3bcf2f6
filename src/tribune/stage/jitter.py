"""Per-speaker playout buffer between the network's rhythm and the mixer's."""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]


class JitterBuffer:
    """A FIFO of mono samples that the mixer drains one tick at a time.

    It fills to ``target`` samples before it plays, so packets that arrive a little late
    still arrive in time. Empty when a tick needs samples (underrun): that tick is silence
    and the buffer fills to ``target`` again. More than ``limit`` samples (overrun, e.g. a
    burst after a network stall, or a sender whose clock runs fast): the oldest go, back
    down to ``target``, so latency stays bounded.

    >>> jb = JitterBuffer(target=1920, limit=4800)
    >>> jb.push(np.zeros(960, np.float32)); jb.pull(960) is None   # still filling
    True
    """

    def __init__(self, target: int, limit: int) -> None:
        if not 0 < target <= limit:
            raise ValueError(f"need 0 < target <= limit, got target={target}, limit={limit}")
        self.target = target
        self.limit = limit
        self._chunks: deque[Samples] = deque()
        self._size = 0
        self._playing = False
        self.underruns = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._size

    def push(self, samples: Samples) -> None:
        if samples.size == 0:
            return
        self._chunks.append(samples)
        self._size += samples.size
        if self._size > self.limit:
            excess = self._size - self.target
            self._discard(excess)
            self.dropped += excess

    def pull(self, n: int) -> Samples | None:
        """The next ``n`` samples, or None (silence) while filling or after an underrun."""
        if not self._playing:
            if self._size < self.target:
                return None
            self._playing = True
        if self._size < n:
            self._playing = False
            self.underruns += 1
            return None
        self._size -= n
        if self._chunks[0].size == n:  # the usual case: one decoded frame per tick
            return self._chunks.popleft()
        out = np.empty(n, np.float32)
        filled = 0
        while filled < n:
            chunk = self._chunks[0]
            take = min(n - filled, chunk.size)
            out[filled : filled + take] = chunk[:take]
            filled += take
            if take == chunk.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[take:]
        return out

    def _discard(self, n: int) -> None:
        while n > 0:
            chunk = self._chunks[0]
            if chunk.size <= n:
                self._chunks.popleft()
                n -= chunk.size
                self._size -= chunk.size
            else:
                self._chunks[0] = chunk[n:]
                self._size -= n
                n = 0
