"""Timing helper shared by the benchmark modules (not a benchmark itself: no ``bench_`` prefix)."""
from __future__ import annotations

import statistics
import time


def median_step_seconds(step, steps: int, warmup: int = 2, sync=lambda: None) -> float:
    """Median wall-clock seconds of ``step()`` over ``steps`` calls after ``warmup`` untimed ones.

    ``sync`` waits for queued device work (``torch.cuda.synchronize`` on a GPU).

    Example:
        >>> median_step_seconds(lambda: None, steps=3) < 0.01
        True
    """
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
