"""Exact presence: the window, the total, forgetting."""

from __future__ import annotations

from tribune.presence.memory import MemoryPresence


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_concurrent_counts_distinct_ids_in_window_and_total_counts_all():
    """Re-seen ids count once; ids silent for longer than the window drop out."""
    clock = Clock()
    p = MemoryPresence(window=30, clock=clock)
    for i in range(100):
        await p.seen("s", f"l{i}")
    await p.seen("s", "l0")
    assert (await p.counts("s")).concurrent == 100
    clock.t += 20
    for i in range(50):
        await p.seen("s", f"l{i}")
    clock.t += 15  # l50..l99 last seen 35 s ago
    counts = await p.counts("s")
    assert (counts.concurrent, counts.total) == (50, 100)


async def test_silent_listener_leaves_within_the_window():
    """A listener who stops heartbeating is gone from the count after 30 s, not before."""
    clock = Clock()
    p = MemoryPresence(window=30, clock=clock)
    await p.seen("s", "a")
    clock.t += 29.9
    assert (await p.counts("s")).concurrent == 1
    clock.t += 0.2
    assert (await p.counts("s")).concurrent == 0
    assert (await p.counts("s")).total == 1


async def test_spaces_are_separate_and_forget_keeps_total():
    """Counts are per Space; forgetting someone leaves the lifetime total alone."""
    p = MemoryPresence(window=30, clock=Clock())
    await p.seen("a", "x")
    await p.seen("b", "x")
    await p.seen("b", "y")
    await p.forget("b", "y")
    assert (await p.counts("a")).public() == {"concurrent": 1, "total": 1}
    assert (await p.counts("b")).public() == {"concurrent": 1, "total": 2}
    final = await p.close_space("b")
    assert final.total == 2
    assert (await p.counts("b")).total == 0
