"""The timing helper of the cost chapters: what it calls, and what it refuses."""

from __future__ import annotations

import pytest

from backprop.timing import median_time


def test_median_time_calls_warmup_plus_repeats_times():
    calls = []
    seconds = median_time(calls.append, "x", repeats=4, warmup=2)
    assert calls == ["x"] * 6
    assert seconds >= 0.0


@pytest.mark.parametrize("bad", [{"repeats": 0}, {"repeats": 1.5}, {"warmup": -1}])
def test_median_time_refuses_bad_counts(bad):
    with pytest.raises(ValueError):
        median_time(lambda: None, **bad)
