"""Wall-clock timing for the chapters that measure what backprop costs.

A timing is a measurement, not a result: the notebooks tag its printed output
``nbval-ignore-output``, and any assert on it is loose.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from backprop._checks import positive_int

__all__ = ["median_time"]


def median_time(
    f: Callable, *args, repeats: int = 5, warmup: int = 1
) -> float:
    """Seconds for one call ``f(*args)``: the median of ``repeats`` calls.

    ``warmup`` untimed calls come first, so that first-call costs (allocating
    memory, starting threads) are not counted. The median, not the mean, so
    that a moment when the machine was busy elsewhere does not move the
    figure.
    """
    repeats = positive_int("repeats", repeats)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(
            f"warmup must be a non-negative integer; got {warmup!r}"
        )
    for _ in range(warmup):
        f(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
