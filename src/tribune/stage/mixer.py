"""The mix: program for the listeners and mix-minus for each speaker, never clipping."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

RATE = 48_000
TICK_SAMPLES = 960  # 20 ms

Samples = npt.NDArray[np.float32]
Gains = npt.NDArray[np.float64]


class Limiter:
    """Peak limiter for a bank of channels, each with its own gain carried across ticks.

    The gain falls at once when a 1 ms block would pass ``threshold`` (fast attack) and
    recovers with a ``release_s`` time constant (slow release); it is ramped sample by sample
    so changes do not click. A ramp can let the first millisecond of a sudden onset through,
    so a soft knee above ``knee`` (tanh, continuous slope) bends anything left into (-1, 1):
    whatever comes in, nothing clips.

    >>> y, g = Limiter().process(13 * np.ones((1, 960), np.float32), np.ones(1))
    >>> float(np.abs(y).max()) <= 1.0
    True
    """

    def __init__(
        self,
        *,
        rate: int = RATE,
        block: int = 48,
        threshold: float = 0.89,  # -1 dBFS
        release_s: float = 0.25,
        knee: float = 0.9,
    ) -> None:
        if not 0 < threshold <= knee < 1:
            raise ValueError(f"need 0 < threshold <= knee < 1, got {threshold}, {knee}")
        self.block = block
        self.threshold = threshold
        self.knee = knee
        self._release = 1.0 - math.exp(-block / (release_s * rate))
        self._ramp = (np.arange(1, block + 1, dtype=np.float32) / block)[None, None, :]

    def process(self, x: npt.NDArray[np.float32], gain: Gains) -> tuple[Samples, Gains]:
        """Limit ``x`` (channels, samples) starting from ``gain`` (channels,).

        Returns the limited signal and each channel's gain at the end, for the next call.
        """
        channels, n = x.shape
        if n % self.block:
            raise ValueError(f"{n} samples is not a whole number of {self.block}-sample blocks")
        blocks = n // self.block
        peaks = np.abs(x).reshape(channels, blocks, self.block).max(axis=2)
        needed = np.minimum(1.0, self.threshold / np.maximum(peaks, 1e-9))
        gains = np.empty((channels, blocks))
        g = gain.astype(np.float64, copy=True)
        for j in range(blocks):
            g += (1.0 - g) * self._release
            np.minimum(g, needed[:, j], out=g)
            gains[:, j] = g
        if not (gains < 1.0).any() and not (gain < 1.0).any():
            y = x.astype(np.float32, copy=True)
        else:
            starts = np.concatenate([gain[:, None], gains[:, :-1]], axis=1)
            ramp = starts[:, :, None] + (gains - starts)[:, :, None] * self._ramp
            y = (x * ramp.reshape(channels, n)).astype(np.float32)
        self._soft_knee(y)
        return y, gains[:, -1].copy()

    def _soft_knee(self, y: Samples) -> None:
        magnitude = np.abs(y)
        over = magnitude > self.knee
        if over.any():
            room = 1.0 - self.knee
            bent = self.knee + room * np.tanh((magnitude[over] - self.knee) / room)
            # float32 rounds values just under 1 up to 1.0, which is still in range.
            y[over] = np.sign(y[over]) * bent


class Mixer:
    """Sums the speakers into the program and each speaker's mix-minus, then limits each.

    ``mix({"ann": a, "bob": b}, ["ann"])`` gives program ``a + b`` and, for Ann,
    ``b``: everyone but her. Each output keeps its own limiter gain from tick to tick.
    """

    def __init__(self, limiter: Limiter | None = None, samples: int = TICK_SAMPLES) -> None:
        self.limiter = limiter or Limiter()
        self.samples = samples
        self._program_gain = 1.0
        self._gains: dict[str, float] = {}

    def mix(
        self, inputs: Mapping[str, Samples], listeners: Sequence[str]
    ) -> tuple[Samples, dict[str, Samples]]:
        """``inputs``: user -> this tick's samples (absent users are silent or muted)."""
        if inputs:
            total = np.sum(np.stack(list(inputs.values())), axis=0, dtype=np.float32)
        else:
            total = np.zeros(self.samples, np.float32)
        rows = np.empty((1 + len(listeners), self.samples), np.float32)
        rows[0] = total
        for i, user in enumerate(listeners, start=1):
            own = inputs.get(user)
            rows[i] = total if own is None else total - own
        gains = np.array([self._program_gain, *(self._gains.get(u, 1.0) for u in listeners)])
        out, gains = self.limiter.process(rows, gains)
        self._program_gain = float(gains[0])
        self._gains = {u: float(g) for u, g in zip(listeners, gains[1:], strict=True)}
        return out[0], {u: out[i] for i, u in enumerate(listeners, start=1)}
