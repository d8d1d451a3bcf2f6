"""How loudly each speaker is talking, for the "who is talking" rings."""

from __future__ import annotations

import math

import numpy as np

from tribune.stage.mixer import Samples

FLOOR_DBFS = -60.0


class LevelMeter:
    """RMS over the last ``window_s`` (a sliding window of ticks), mapped to 0..1.

    -60 dBFS and below read 0, full scale reads 1, linearly in dB between: a full-scale sine
    (-3 dBFS) reads 0.95, ordinary speech around -20 dBFS about 0.67.
    """

    def __init__(self, tick_s: float, window_s: float = 0.3) -> None:
        self._squares = np.zeros(max(1, round(window_s / tick_s)))
        self._next = 0

    def update(self, samples: Samples | None) -> None:
        """One tick: the samples the speaker contributed, or None for silence."""
        mean_square = 0.0 if samples is None else float(np.dot(samples, samples)) / samples.size
        self._squares[self._next] = mean_square
        self._next = (self._next + 1) % self._squares.size

    @property
    def level(self) -> float:
        mean_square = float(self._squares.mean())
        if mean_square <= 10 ** (FLOOR_DBFS / 10):
            return 0.0
        dbfs = 10 * math.log10(mean_square)
        return min(1.0, (dbfs - FLOOR_DBFS) / -FLOOR_DBFS)
